"""Additive noise, as Real-ESRGAN / BasicSR's ``random_add_{gaussian,poisson}_noise_pt``.

All randomness comes from the explicit ``generator`` (noise fields are drawn on its device and
moved to the image's). Per-image parameters are ``[B]`` tensors. Outputs are clipped to ``[0, 1]``.

- :func:`gaussian_noise` – ``img + N(0, σ/255)``, colour or (per image) grey.
- :func:`poisson_noise` – BasicSR's shot noise: the image is quantised to 8 bits, the number of
  distinct values ``n`` is rounded up to a power of two ``N``, and ``Poisson(img·N)/N − img``
  times ``scale`` is added.
- :func:`noise` – AgenticIR's "noise": per image either Gaussian (σ) or Poisson (scale).
- :func:`gaussian_poisson_noise` – training-corpus sensor noise: Poisson shot noise, then
  Gaussian read noise.
"""

from __future__ import annotations

import torch

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale (BasicSR uses it)


def _as_batch(value: torch.Tensor | float, batch: int, img: torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=img.dtype, device=img.device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or shape [{batch}], got {tuple(t.shape)}")
    return t


def _gray(img: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(GRAY_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(1, keepdim=True)


def gaussian_noise(
    img: torch.Tensor,
    sigma: torch.Tensor | float,
    generator: torch.Generator,
    gray: torch.Tensor | bool = False,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise of std ``sigma/255`` (``sigma`` on the 0–255 scale, ``[B]``).

    ``gray[b]`` makes image ``b``'s noise identical on the three channels. Clipped to ``[0, 1]``.
    """
    b = img.shape[0]
    sigma = _as_batch(sigma, b, img, "sigma")
    if (sigma < 0).any():
        raise ValueError(f"gaussian_noise sigma must be >= 0 (0-255 scale), got {sigma.tolist()}")
    gray = _as_batch(gray, b, img, "gray").to(torch.bool)
    field = torch.randn(img.shape, generator=generator, device=generator.device, dtype=img.dtype).to(img.device)
    if gray.any():
        field = torch.where(gray.view(b, 1, 1, 1), field[:, :1].expand_as(field), field)
    return (img + field * sigma.view(b, 1, 1, 1) / 255.0).clamp(0.0, 1.0)


def _shot(img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """BasicSR's Poisson noise field for ``img [B, C, H, W]`` (before ``scale``)."""
    b = img.shape[0]
    quant = (img * 255.0).round().clamp(0, 255)
    levels = torch.zeros(b, 256, dtype=torch.bool, device=img.device)
    levels.scatter_(1, quant.reshape(b, -1).long(), True)
    vals = torch.exp2(torch.ceil(torch.log2(levels.sum(1).to(img.dtype)))).view(b, 1, 1, 1)
    base = quant / 255.0
    rate = (base * vals).to(generator.device)
    counts = torch.poisson(rate, generator=generator).to(img.device)
    return counts / vals - base


def poisson_noise(
    img: torch.Tensor,
    scale: torch.Tensor | float,
    generator: torch.Generator,
    gray: torch.Tensor | bool = False,
) -> torch.Tensor:
    """Add BasicSR's Poisson (shot) noise times ``scale [B]``; grey images use the luma's noise. Clipped."""
    b = img.shape[0]
    scale = _as_batch(scale, b, img, "scale")
    if (scale < 0).any():
        raise ValueError(f"poisson_noise scale must be >= 0, got {scale.tolist()}")
    gray = _as_batch(gray, b, img, "gray").to(torch.bool)
    field = _shot(img, generator)
    if gray.any():
        field = torch.where(gray.view(b, 1, 1, 1), _shot(_gray(img), generator).expand_as(field), field)
    return (img + field * scale.view(b, 1, 1, 1)).clamp(0.0, 1.0)


def noise(
    img: torch.Tensor,
    poisson: torch.Tensor,
    level: torch.Tensor,
    generator: torch.Generator,
    gray: torch.Tensor | bool = False,
) -> torch.Tensor:
    """Per image: Poisson noise of scale ``level[b]`` where ``poisson[b]``, else Gaussian of σ ``level[b]``/255."""
    b = img.shape[0]
    poisson = torch.as_tensor(poisson, dtype=torch.bool, device=img.device).expand(b)
    level = _as_batch(level, b, img, "level")
    gray = _as_batch(gray, b, img, "gray").to(torch.bool)
    out = img.clone()
    for use_poisson in (False, True):
        idx = (poisson == use_poisson).nonzero().flatten()
        if idx.numel() == 0:
            continue
        op = poisson_noise if use_poisson else gaussian_noise
        out[idx] = op(img[idx], level[idx], generator, gray[idx])
    return out


def gaussian_poisson_noise(
    img: torch.Tensor,
    sigma: torch.Tensor | float,
    poisson_scale: torch.Tensor | float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Signal-dependent sensor noise: Poisson shot noise (``poisson_scale``), then Gaussian read noise (σ/255).

    ``sigma``, ``poisson_scale``: ``[B]`` or scalars. Clipped to ``[0, 1]``.
    """
    return gaussian_noise(poisson_noise(img, poisson_scale, generator), sigma, generator)
