"""Real-ESRGAN's second-order degradation (training corpus), batched torch, own implementation.

Two rounds of ``blur → random resize → noise → JPEG``, then ``final sinc + resize to H/scale``
and JPEG in a random order, as in Real-ESRGAN's ``RealESRGANModel.feed_data`` with the
``train_realesrgan_x4plus.yml`` settings (defaults of :class:`RealESRGANSettings`). Blur kernels
(``iso``/``aniso`` Gaussian, generalised Gaussian, plateau, 2-D sinc; sizes 7–21 padded to 21) follow
BasicSR's ``random_mixed_kernels`` / ``circular_lowpass_kernel``.

Parameters are plain JSON dicts per image (:func:`sample_realesrgan`), so a label can replay the
exact degradation. Deviations from the reference, all documented here:

- the input is the clean image itself (Real-ESRGAN degrades a USM-sharpened copy of the GT);
- JPEG is a real libjpeg round trip at an integer quality (Real-ESRGAN: differentiable JPEG at a
  float quality);
- blur, noise kind, grey noise and JPEG quality are drawn per image (Real-ESRGAN draws the noise
  kind and the second-blur coin per batch). The two resizes and the final order change the image
  size, so they are drawn once per batch, as in Real-ESRGAN; :func:`realesrgan` groups images that
  share them, so any list of per-image dicts can be replayed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rar.degradations.filtering import filter2d
from rar.degradations.jpeg import jpeg
from rar.degradations.kernels import gaussian_family_kernel, pulse_kernel, sinc_kernel
from rar.degradations.labels import check_choice, check_keys, check_range, position
from rar.degradations.noise import noise
from rar.degradations.sampling import Draw

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
KERNEL_SIZES = tuple(range(7, 22, 2))
KERNEL_GRID = 21
RESIZE_MODES = ("area", "bilinear", "bicubic")
FINAL_ORDERS = ("resize_first", "jpeg_first")
SINC_OMEGA = (math.pi / 5, math.pi)  # kernels of size >= 13 (smaller ones: pi/3 .. pi)


@dataclass(frozen=True)
class BlurSettings:
    """Ranges of one blur stage (BasicSR's ``blur_sigma``, ``kernel_prob``, ``betag_range``, ``betap_range``,
    ``sinc_prob``)."""

    sigma: tuple[float, float] = (0.2, 3.0)
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    betag: tuple[float, float] = (0.5, 4.0)
    betap: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1


@dataclass(frozen=True)
class StageSettings:
    """Ranges of one ``blur → resize → noise → JPEG`` round."""

    blur: BlurSettings = field(default_factory=BlurSettings)
    blur_prob: float = 1.0
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma on the 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)


SECOND_STAGE = StageSettings(
    blur=BlurSettings(sigma=(0.2, 1.5)),
    blur_prob=0.8,
    resize_prob=(0.3, 0.4, 0.3),
    resize_range=(0.3, 1.2),
    noise_range=(1.0, 25.0),
    poisson_scale_range=(0.05, 2.5),
)


@dataclass(frozen=True)
class RealESRGANSettings:
    """All ranges (defaults: Real-ESRGAN x4plus). ``scale``: output is ``H/scale × W/scale``."""

    scale: int = 4
    first: StageSettings = field(default_factory=StageSettings)
    second: StageSettings = SECOND_STAGE
    final_sinc_prob: float = 0.8


DEFAULT_SETTINGS = RealESRGANSettings()


def _sample_kernels(draw: Draw, n: int, blur: BlurSettings, apply_prob: float) -> list[dict | None]:
    sizes = draw.choice(n, KERNEL_SIZES)
    use_sinc = draw.bernoulli(n, blur.sinc_prob)
    omega_small = draw.uniform(n, math.pi / 3, math.pi)
    omega_large = draw.uniform(n, *SINC_OMEGA)
    kinds = draw.choice(n, KERNEL_TYPES, blur.kernel_prob)
    sigma_x, sigma_y = draw.uniform(n, *blur.sigma), draw.uniform(n, *blur.sigma)
    theta = draw.uniform(n, -math.pi, math.pi)
    low_beta = draw.bernoulli(n, 0.5)
    betag = [
        lo if low else hi
        for lo, hi, low in zip(draw.uniform(n, blur.betag[0], 1.0), draw.uniform(n, 1.0, blur.betag[1]), low_beta)
    ]
    betap = [
        lo if low else hi
        for lo, hi, low in zip(draw.uniform(n, blur.betap[0], 1.0), draw.uniform(n, 1.0, blur.betap[1]), low_beta)
    ]
    applied = draw.bernoulli(n, apply_prob)
    out: list[dict | None] = []
    for i in range(n):
        if not applied[i]:
            out.append(None)
        elif use_sinc[i]:
            out.append({"type": "sinc", "size": sizes[i], "omega": omega_small[i] if sizes[i] < 13 else omega_large[i]})
        else:
            kind = kinds[i]
            iso = not kind.endswith("aniso")
            beta = betag[i] if kind.startswith("generalized") else betap[i] if kind.startswith("plateau") else 1.0
            out.append(
                {
                    "type": kind,
                    "size": sizes[i],
                    "sigma_x": sigma_x[i],
                    "sigma_y": sigma_x[i] if iso else sigma_y[i],
                    "theta": 0.0 if iso else theta[i],
                    "beta": beta,
                }
            )
    return out


def _sample_resize(draw: Draw, stage: StageSettings) -> dict:
    direction = draw.choice(1, ("up", "down", "keep"), stage.resize_prob)[0]
    up, down = draw.uniform(1, 1.0, stage.resize_range[1])[0], draw.uniform(1, stage.resize_range[0], 1.0)[0]
    scale = {"up": up, "down": down, "keep": 1.0}[direction]
    return {"scale": scale, "mode": draw.choice(1, RESIZE_MODES)[0]}


def _sample_noise(draw: Draw, n: int, stage: StageSettings) -> list[dict]:
    gaussian = draw.bernoulli(n, stage.gaussian_noise_prob)
    sigma, scale = draw.uniform(n, *stage.noise_range), draw.uniform(n, *stage.poisson_scale_range)
    gray = draw.bernoulli(n, stage.gray_noise_prob)
    return [
        {"kind": "gaussian" if g else "poisson", "level": s if g else p, "gray": y}
        for g, s, p, y in zip(gaussian, sigma, scale, gray)
    ]


def sample_realesrgan(
    batch: int, generator: torch.Generator, settings: RealESRGANSettings = DEFAULT_SETTINGS
) -> list[dict]:
    """Per-image JSON parameter dicts for :func:`realesrgan` (size-changing choices shared by the batch)."""
    draw = Draw(generator)
    first, second = settings.first, settings.second
    blur1 = _sample_kernels(draw, batch, first.blur, first.blur_prob)
    resize1 = _sample_resize(draw, first)
    noise1 = _sample_noise(draw, batch, first)
    jpeg1 = [round(q) for q in draw.uniform(batch, *first.jpeg_range)]
    blur2 = _sample_kernels(draw, batch, second.blur, second.blur_prob)
    resize2 = _sample_resize(draw, second)
    noise2 = _sample_noise(draw, batch, second)
    jpeg2 = [round(q) for q in draw.uniform(batch, *second.jpeg_range)]
    sizes, omegas = draw.choice(batch, KERNEL_SIZES), draw.uniform(batch, math.pi / 3, math.pi)
    use_sinc = draw.bernoulli(batch, settings.final_sinc_prob)
    final = {"order": draw.choice(1, FINAL_ORDERS)[0], "mode": draw.choice(1, RESIZE_MODES)[0]}
    return [
        {
            "scale": settings.scale,
            "blur1": blur1[i],
            "resize1": resize1,
            "noise1": noise1[i],
            "jpeg1": jpeg1[i],
            "blur2": blur2[i],
            "resize2": resize2,
            "noise2": noise2[i],
            "jpeg2": jpeg2[i],
            "sinc": {"type": "sinc", "size": sizes[i], "omega": omegas[i]} if use_sinc[i] else None,
            "final": final,
        }
        for i in range(batch)
    ]


def build_kernels(specs: Sequence[dict | None], device: torch.device | None = None) -> torch.Tensor:
    """``[B, 21, 21]`` kernels from per-image kernel dicts (``None``: identity)."""
    out = pulse_kernel(len(specs), KERNEL_GRID, device)
    sinc = [i for i, s in enumerate(specs) if s is not None and s["type"] == "sinc"]
    gauss = [i for i, s in enumerate(specs) if s is not None and s["type"] != "sinc"]

    def col(idx: list[int], key: str) -> torch.Tensor:
        return torch.tensor([float(specs[i][key]) for i in idx], dtype=torch.float64, device=device)

    if sinc:
        out[sinc] = sinc_kernel(col(sinc, "size"), col(sinc, "omega"), KERNEL_GRID)
    if gauss:
        plateau = torch.tensor([specs[i]["type"].startswith("plateau") for i in gauss], device=device)
        out[gauss] = gaussian_family_kernel(
            col(gauss, "size"),
            col(gauss, "sigma_x"),
            col(gauss, "sigma_y"),
            col(gauss, "theta"),
            col(gauss, "beta"),
            plateau,
            KERNEL_GRID,
        )
    return out


def _blur(img: torch.Tensor, specs: Sequence[dict | None]) -> torch.Tensor:
    if all(s is None for s in specs):
        return img
    return filter2d(img, build_kernels(specs, img.device), border="reflect101")


def _noise(img: torch.Tensor, specs: Sequence[dict], generator: torch.Generator) -> torch.Tensor:
    poisson = torch.tensor([s["kind"] == "poisson" for s in specs], device=img.device)
    level = torch.tensor([float(s["level"]) for s in specs], dtype=img.dtype, device=img.device)
    gray = torch.tensor([bool(s["gray"]) for s in specs], device=img.device)
    return noise(img, poisson, level, generator, gray)


def _jpeg(img: torch.Tensor, qualities: Sequence[int]) -> torch.Tensor:
    return jpeg(img.clamp(0.0, 1.0), torch.tensor([int(q) for q in qualities]))


def _degrade_group(img: torch.Tensor, params: Sequence[dict], generator: torch.Generator) -> torch.Tensor:
    p0 = params[0]
    scale, (h, w) = int(p0["scale"]), img.shape[-2:]
    out = _blur(img, [p["blur1"] for p in params])
    out = F.interpolate(out, scale_factor=float(p0["resize1"]["scale"]), mode=p0["resize1"]["mode"])
    out = _noise(out, [p["noise1"] for p in params], generator)
    out = _jpeg(out, [p["jpeg1"] for p in params])
    out = _blur(out, [p["blur2"] for p in params])
    s2 = float(p0["resize2"]["scale"])
    out = F.interpolate(
        out, size=(max(1, int(h / scale * s2)), max(1, int(w / scale * s2))), mode=p0["resize2"]["mode"]
    )
    out = _noise(out, [p["noise2"] for p in params], generator)
    final, sinc = p0["final"], [p["sinc"] for p in params]
    if final["order"] == "resize_first":
        out = _blur(F.interpolate(out, size=(h // scale, w // scale), mode=final["mode"]), sinc)
        out = _jpeg(out, [p["jpeg2"] for p in params])
    else:
        out = _jpeg(out, [p["jpeg2"] for p in params])
        out = _blur(F.interpolate(out, size=(h // scale, w // scale), mode=final["mode"]), sinc)
    return (out * 255.0).round().clamp(0, 255) / 255.0


def realesrgan(img: torch.Tensor, params: Sequence[dict], generator: torch.Generator) -> torch.Tensor:
    """Apply Real-ESRGAN's second-order degradation with per-image ``params`` (from :func:`sample_realesrgan`).

    Args:
        img: ``[B, 3, H, W]`` in ``[0, 1]``, ``H`` and ``W`` divisible by every ``params[b]["scale"]``.
        params: ``B`` dicts; images whose size-changing entries (scale, resizes, final order) agree
            are processed together.
        generator: noise source.

    Returns:
        ``[B, 3, H/scale, W/scale]`` in ``[0, 1]``, quantised to 8 bits.
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"realesrgan expects [B, 3, H, W], got {tuple(img.shape)}")
    if len(params) != img.shape[0]:
        raise ValueError(f"realesrgan needs one params dict per image ({img.shape[0]}), got {len(params)}")
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(params):
        key = json.dumps([p["scale"], p["resize1"], p["resize2"], p["final"]], sort_keys=True)
        groups.setdefault(key, []).append(i)
    scales = {int(p["scale"]) for p in params}
    if len(scales) != 1:
        raise ValueError(f"realesrgan needs one output scale per batch, got {sorted(scales)}")
    scale = scales.pop()
    h, w = img.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"realesrgan needs H, W divisible by scale {scale}, got {h}x{w}")
    out = img.new_empty(img.shape[0], 3, h // scale, w // scale)
    for idx in groups.values():
        out[idx] = _degrade_group(img[idx], [params[i] for i in idx], generator)
    return out


PARAM_KEYS = ("scale", "blur1", "resize1", "noise1", "jpeg1", "blur2", "resize2", "noise2", "jpeg2", "sinc", "final")


def _check_kernel(where: str, k: dict | None, blur: BlurSettings | None, optional: bool) -> None:
    """``blur`` None: a final sinc kernel (cutoff pi/3..pi)."""
    if k is None:
        if not optional:
            raise ValueError(f"realesrgan: {where} is required (blur probability is 1), got None")
        return
    if not isinstance(k, dict) or "type" not in k:
        raise ValueError(f"realesrgan: {where} must be a kernel dict with a 'type', got {k!r}")
    name = f"realesrgan {where}"
    check_choice(name, "type", k["type"], ("sinc",) if blur is None else ("sinc", *KERNEL_TYPES))
    if k["type"] == "sinc":
        check_keys(name, k, ("type", "size", "omega"))
        check_choice(name, "size", k["size"], KERNEL_SIZES)
        lo = math.pi / 3 if blur is None or k["size"] < 13 else SINC_OMEGA[0]
        check_range(name, "omega", k["omega"], lo, math.pi)
        return
    check_keys(name, k, ("type", "size", "sigma_x", "sigma_y", "theta", "beta"))
    check_choice(name, "size", k["size"], KERNEL_SIZES)
    check_range(name, "sigma_x", k["sigma_x"], *blur.sigma)
    check_range(name, "sigma_y", k["sigma_y"], *blur.sigma)
    check_range(name, "theta", k["theta"], -math.pi, math.pi)
    if not k["type"].endswith("aniso") and (k["sigma_x"] != k["sigma_y"] or k["theta"] != 0):
        raise ValueError(f"{name}: isotropic kernels need sigma_x == sigma_y and theta == 0, got {k}")
    kind = k["type"]
    beta_range = (
        blur.betag if kind.startswith("generalized") else blur.betap if kind.startswith("plateau") else (1.0, 1.0)
    )
    check_range(name, "beta", k["beta"], *beta_range)


def _check_stage(params: dict, i: int, stage: StageSettings) -> None:
    name = f"realesrgan stage {i}"
    _check_kernel(f"blur{i}", params[f"blur{i}"], stage.blur, optional=stage.blur_prob < 1)
    resize = params[f"resize{i}"]
    check_keys(f"{name} resize", resize, ("scale", "mode"))
    check_range(f"{name} resize", "scale", resize["scale"], *stage.resize_range)
    check_choice(f"{name} resize", "mode", resize["mode"], RESIZE_MODES)
    nz = params[f"noise{i}"]
    check_keys(f"{name} noise", nz, ("kind", "level", "gray"))
    check_choice(f"{name} noise", "kind", nz["kind"], ("gaussian", "poisson"))
    check_range(
        f"{name} noise",
        "level",
        nz["level"],
        *(stage.noise_range if nz["kind"] == "gaussian" else stage.poisson_scale_range),
    )
    check_choice(f"{name} noise", "gray", nz["gray"], (True, False))
    check_range(
        name, f"jpeg{i}", params[f"jpeg{i}"], round(stage.jpeg_range[0]), round(stage.jpeg_range[1]), integer=True
    )


def check_realesrgan(params: dict, settings: RealESRGANSettings = DEFAULT_SETTINGS) -> None:
    """Raise ``ValueError`` naming the first entry of ``params`` outside ``settings``' ranges."""
    check_keys("realesrgan", params, PARAM_KEYS)
    check_choice("realesrgan", "scale", params["scale"], (settings.scale,))
    _check_stage(params, 1, settings.first)
    _check_stage(params, 2, settings.second)
    _check_kernel("sinc", params["sinc"], None, optional=True)
    check_keys("realesrgan final", params["final"], ("order", "mode"))
    check_choice("realesrgan final", "order", params["final"]["order"], FINAL_ORDERS)
    check_choice("realesrgan final", "mode", params["final"]["mode"], RESIZE_MODES)


def realesrgan_position(params: dict, settings: RealESRGANSettings = DEFAULT_SETTINGS) -> float:
    """Overall harshness in ``[0, 1]``: mean position of first blur width, both noise levels and both JPEG qualities."""
    k = params["blur1"]
    if k is None:
        blur = 0.0
    elif k["type"] == "sinc":
        blur = position(math.pi - k["omega"], 0.0, math.pi - SINC_OMEGA[0])
    else:
        blur = position(0.5 * (k["sigma_x"] + k["sigma_y"]), *settings.first.blur.sigma)
    parts = [blur]
    for i, stage in ((1, settings.first), (2, settings.second)):
        nz = params[f"noise{i}"]
        parts.append(
            position(nz["level"], *(stage.noise_range if nz["kind"] == "gaussian" else stage.poisson_scale_range))
        )
        parts.append(position(stage.jpeg_range[1] - params[f"jpeg{i}"], 0.0, stage.jpeg_range[1] - stage.jpeg_range[0]))
    return sum(parts) / len(parts)
