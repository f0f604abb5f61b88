"""AgenticIR's deterministic degradation ops as pure batched torch functions.

Every op maps ``img [B, 3, H, W]`` in ``[0, 1]`` and explicit per-image parameters (``[B]``
tensors) to a clipped image; none draws random numbers. The random ones (noise, rain) live in
:mod:`rar.degradations.noise` and :mod:`rar.degradations.rain` and take a ``torch.Generator``;
JPEG is in :mod:`rar.degradations.jpeg`. Formulas follow AgenticIR's ``add_single_degradation.py``
(OpenCV on uint8 BGR); parameter *ranges* are enforced by the specs in
:mod:`rar.degradations.specs`, not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rar.degradations.filtering import filter2d
from rar.degradations.kernels import disk_kernel, motion_kernel
from rar.degradations.resize import imresize

DARK_SHIFT, DARK_GAMMA, DARK_LINEAR = 0, 1, 2
DARK_METHODS = ("constant shift", "gamma correction", "linear mapping")  # AgenticIR's names, by code
SYNTHETIC_NEAR_DEPTH = 0.25


def _check_img(img: torch.Tensor, op: str) -> None:
    if not torch.is_tensor(img) or img.ndim != 4 or img.shape[1] != 3 or not img.is_floating_point():
        shape = tuple(img.shape) if torch.is_tensor(img) else type(img).__name__
        raise ValueError(f"{op} expects a float image [B, 3, H, W] in [0, 1], got {shape}")


def _per_image(value: torch.Tensor | float, img: torch.Tensor, name: str, dtype=None) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype or img.dtype, device=img.device)
    if t.ndim == 0:
        t = t.expand(img.shape[0])
    if t.shape != (img.shape[0],):
        raise ValueError(f"{name} must be a scalar or shape [{img.shape[0]}], got {tuple(t.shape)}")
    return t


def low_resolution(img: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """MATLAB bicubic downscale by ``1/factor`` with antialiasing; output ``[B, 3, ⌈H/f⌉, ⌈W/f⌉]``, clipped."""
    _check_img(img, "low_resolution")
    if factor < 1:
        raise ValueError(f"low_resolution factor must be >= 1, got {factor}")
    return imresize(img, scale=1.0 / factor).clamp(0.0, 1.0)


def dark(img: torch.Tensor, method: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Darken the HSV value channel ``V = max(R, G, B)`` keeping H and S, per image one of:

    - ``method 0`` constant shift: ``V − amount/255`` (``amount`` on 0–255, AgenticIR 30–49);
    - ``method 1`` gamma correction: ``V ** (1/amount)`` (``amount`` = γ, AgenticIR 0.5–0.7);
    - ``method 2`` linear mapping: ``(V − min V)/(max V − min V) · amount/255`` (AgenticIR 100–149).

    With H and S fixed, HSV → RGB is linear in V, so the edit is exactly ``RGB · V'/V`` (this equals
    ``hsv_to_rgb`` of the edited ``rgb_to_hsv``, see :mod:`rar.degradations.color`, at a fraction of the cost).
    """
    _check_img(img, "dark")
    method = _per_image(method, img, "method", torch.long)
    amount = _per_image(amount, img, "amount")
    if ((method < 0) | (method > 2)).any():
        raise ValueError(f"dark method codes are 0, 1, 2 {DARK_METHODS}, got {method.tolist()}")
    v = img.amax(1, keepdim=True)
    m = method.view(-1, 1, 1, 1)
    a = amount.view(-1, 1, 1, 1)
    shifted = (v - a / 255.0).clamp(0.0, 1.0)
    gamma = v.clamp(0.0, 1.0).pow(1.0 / torch.where(m == DARK_GAMMA, a, torch.ones_like(a)))
    lo, hi = v.amin((1, 2, 3), keepdim=True), v.amax((1, 2, 3), keepdim=True)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    linear = (v - lo) / span * a / 255.0
    new_v = torch.where(m == DARK_SHIFT, shifted, torch.where(m == DARK_GAMMA, gamma, linear)).clamp(0.0, 1.0)
    ratio = torch.where(v > 0, new_v / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return (img * ratio).clamp(0.0, 1.0)


def synthetic_depth(
    batch: int,
    height: int,
    width: int,
    near: float = SYNTHETIC_NEAR_DEPTH,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Fallback depth ``[B, 1, H, W]`` when no depth map exists: a vertical gradient from 1 (top row,
    far: sky/horizon in typical photos) to ``near`` (bottom row, close ground), constant across
    each row. Deterministic and image-independent, so haze density varies smoothly top to bottom
    as in outdoor scenes; a real depth map (MiO100 ships them) should be passed when available.
    """
    ramp = (
        torch.linspace(1.0, near, height, device=device, dtype=dtype)
        if height > 1
        else torch.ones(1, device=device, dtype=dtype)
    )
    return ramp.view(1, 1, height, 1).expand(batch, 1, height, width)


def haze(
    img: torch.Tensor, airlight: torch.Tensor, beta: torch.Tensor, depth: torch.Tensor | None = None
) -> torch.Tensor:
    """Atmospheric scattering: ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)``, ``d = depth / max(depth)`` per image.

    Args:
        img: ``[B, 3, H, W]``.
        airlight: ``A`` per image ``[B]`` (AgenticIR ``U(0.7, 1.0)``, on the 0–1 scale).
        beta: scattering coefficient ``[B]`` (AgenticIR ``U(0.6, 1.8)``).
        depth: optional ``[B, 1, h, w]`` non-negative depth (larger = farther); resized bicubically to
            ``H × W`` when its size differs (AgenticIR upsamples MiO100's ¼-size maps with
            ``cv2.INTER_CUBIC``, which torch's bicubic matches). ``None``: :func:`synthetic_depth`.
    """
    _check_img(img, "haze")
    b, _, h, w = img.shape
    airlight = _per_image(airlight, img, "airlight").view(b, 1, 1, 1)
    beta = _per_image(beta, img, "beta").view(b, 1, 1, 1)
    if depth is None:
        depth = synthetic_depth(b, h, w, device=img.device, dtype=img.dtype)
    else:
        if depth.ndim != 4 or depth.shape[:2] != (b, 1):
            raise ValueError(f"haze depth must be [B={b}, 1, h, w], got {tuple(depth.shape)}")
        depth = depth.to(img.device, img.dtype)
        if depth.shape[-2:] != (h, w):
            depth = F.interpolate(depth, size=(h, w), mode="bicubic", align_corners=False)
    depth = depth.clamp_min(0.0)
    peak = depth.amax((1, 2, 3), keepdim=True)
    d = depth / torch.where(peak > 0, peak, torch.ones_like(peak))
    t = torch.exp(-beta * d)
    return (img * t + airlight * (1.0 - t)).clamp(0.0, 1.0)


def motion_blur(img: torch.Tensor, radius: torch.Tensor, sigma: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """imagecorruptions' motion blur: a one-sided Gaussian-weighted line of ``2·radius + 1`` taps at
    ``angle`` degrees (see :func:`rar.degradations.kernels.motion_kernel`), edges replicated."""
    _check_img(img, "motion_blur")
    kernel = motion_kernel(
        _per_image(radius, img, "radius", torch.long).cpu(),
        _per_image(sigma, img, "sigma", torch.float64).cpu(),
        _per_image(angle, img, "angle", torch.float64).cpu(),
    )
    return filter2d(img, kernel.to(img.device), border="replicate").clamp(0.0, 1.0)


def defocus_blur(img: torch.Tensor, radius: torch.Tensor, alias_sigma: torch.Tensor) -> torch.Tensor:
    """imagecorruptions' defocus blur: an anti-aliased disk of ``radius`` (``alias_sigma`` 3×3 Gaussian),
    reflect-101 borders (``cv2.filter2D``'s default)."""
    _check_img(img, "defocus_blur")
    kernel = disk_kernel(
        _per_image(radius, img, "radius", torch.float64).cpu(),
        _per_image(alias_sigma, img, "alias_sigma", torch.float64).cpu(),
    )
    return filter2d(img, kernel.to(img.device), border="reflect101").clamp(0.0, 1.0)
