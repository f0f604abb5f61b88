"""Batched blur-kernel builders: one ``[B, S, S]`` tensor holding a kernel per image.

All kernels are float64, sum to 1, and are meant for :func:`rar.degradations.filtering.filter2d`
(anchor at the centre). Parameters are per-image tensors of shape ``[B]``.

- :func:`motion_kernel` – imagecorruptions' motion blur (AgenticIR "motion blur").
- :func:`disk_kernel` – imagecorruptions' anti-aliased disk (AgenticIR "defocus blur").
- :func:`gaussian_family_kernel`, :func:`sinc_kernel`, :func:`pulse_kernel` – BasicSR's
  Real-ESRGAN kernels (iso/aniso Gaussian, generalised Gaussian, plateau, circular low-pass).
"""

from __future__ import annotations

import math

import torch

from rar.degradations.filtering import filter2d

DISK_HALF = 8  # imagecorruptions' disk grid is arange(-8, 9) for radius <= 8


def _f64(x: torch.Tensor | float, like: torch.Tensor | None = None) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64, device=None if like is None else like.device)


def motion_kernel(radius: torch.Tensor, sigma: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """One-sided Gaussian-weighted line kernels, ``[B, S, S]`` with ``S = 4·max(radius) + 1``.

    Tap ``i = 0 … 2r`` has weight ``∝ exp(−i² / 2σ²)`` and sits at offset
    ``(dy, dx) = (−⌈i·sin θ − ½⌉, −⌈i·cos θ − ½⌉)`` (θ = ``angle`` in degrees), i.e.
    ``out(y, x) = Σ_i w_i · img(y − dy_i, x − dx_i)`` exactly as imagecorruptions' ``_motion_blur``
    shifts and sums the image (use ``border="replicate"``, its edge fill).
    """
    radius = radius.to(torch.long)
    sigma, angle = _f64(sigma), _f64(angle)
    if (radius < 0).any() or (sigma <= 0).any():
        raise ValueError(f"motion_kernel needs radius >= 0 and sigma > 0, got {radius.tolist()}, {sigma.tolist()}")
    width = 2 * radius + 1
    taps = int(width.max())
    reach = taps - 1
    size = 2 * reach + 1
    i = torch.arange(taps, dtype=torch.float64, device=sigma.device)[None, :]  # [1, T]
    weight = torch.exp(-(i**2) / (2 * sigma[:, None] ** 2)) * (i < width[:, None].to(sigma.device))
    weight = weight / weight.sum(1, keepdim=True)
    theta = torch.deg2rad(angle)[:, None]
    w = width[:, None].to(torch.float64).to(sigma.device)
    point_y, point_x = w * torch.sin(theta), w * torch.cos(theta)
    hyp = torch.hypot(point_y, point_x)
    dy = -torch.ceil(i * point_y / hyp - 0.5)
    dx = -torch.ceil(i * point_x / hyp - 0.5)
    flat = ((reach - dy) * size + (reach - dx)).long()
    kernel = torch.zeros(radius.shape[0], size * size, dtype=torch.float64, device=sigma.device)
    return kernel.scatter_add_(1, flat, weight).view(-1, size, size)


def gaussian_3x3(sigma: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 3]`` OpenCV ``GaussianBlur(ksize=(3, 3), sigmaX=σ)`` kernels (σ > 0)."""
    sigma = _f64(sigma)
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, device=sigma.device)
    g = torch.exp(-(x**2)[None, :] / (2 * sigma[:, None] ** 2))
    g = g / g.sum(1, keepdim=True)
    return g[:, :, None] * g[:, None, :]


def disk_kernel(radius: torch.Tensor, alias_sigma: torch.Tensor) -> torch.Tensor:
    """Anti-aliased disks, ``[B, 17, 17]``: ``1[x² + y² ≤ r²]`` normalised, then a 3×3 Gaussian of σ.

    imagecorruptions' ``disk`` for ``radius ≤ 8`` (the grid is ``arange(-8, 9)``).
    """
    radius, alias_sigma = _f64(radius), _f64(alias_sigma)
    if (radius < 0).any() or (radius > DISK_HALF).any() or (alias_sigma <= 0).any():
        raise ValueError(
            f"disk_kernel needs 0 <= radius <= {DISK_HALF} and alias_sigma > 0, "
            f"got radius {radius.tolist()}, alias_sigma {alias_sigma.tolist()}"
        )
    ax = torch.arange(-DISK_HALF, DISK_HALF + 1, dtype=torch.float64, device=radius.device)
    r2 = ax[None, :] ** 2 + ax[:, None] ** 2
    disk = (r2[None] <= radius[:, None, None] ** 2).to(torch.float64)
    disk = disk / disk.sum((1, 2), keepdim=True)
    return filter2d(disk[:, None], gaussian_3x3(alias_sigma), border="reflect101")[:, 0]


def _grid(size: int, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
    ax = torch.arange(-(size // 2), size // 2 + 1, dtype=torch.float64, device=device)
    return ax[None, :].expand(size, size), ax[:, None].expand(size, size)  # x (columns), y (rows)


def _support_mask(size: torch.Tensor, grid: int) -> torch.Tensor:
    """``[B, grid, grid]`` mask of the centred ``size × size`` window (BasicSR pads kernels to 21)."""
    x, y = _grid(grid, size.device)
    half = (size.to(torch.float64) // 2)[:, None, None]
    return (x.abs()[None] <= half) & (y.abs()[None] <= half)


def gaussian_family_kernel(
    size: torch.Tensor,
    sigma_x: torch.Tensor,
    sigma_y: torch.Tensor,
    theta: torch.Tensor,
    beta: torch.Tensor,
    plateau: torch.Tensor,
    grid: int = 21,
) -> torch.Tensor:
    """BasicSR's bivariate kernels, ``[B, grid, grid]``, each zero outside its odd ``size × size`` window.

    With ``q = [x y] Σ⁻¹ [x y]ᵀ``, ``Σ = R(θ) diag(σx², σy²) R(θ)ᵀ``:
    generalised Gaussian ``exp(−½ q^β)`` (β = 1: ordinary Gaussian) or, where ``plateau``,
    ``1 / (q^β + 1)``. Isotropic kernels have ``σy = σx``, ``θ = 0``.
    """
    sx, sy, th, be = (_f64(v)[:, None, None] for v in (sigma_x, sigma_y, theta, beta))
    x, y = _grid(grid, sx.device)
    u = x * torch.cos(th) + y * torch.sin(th)
    v = -x * torch.sin(th) + y * torch.cos(th)
    q = u**2 / sx**2 + v**2 / sy**2
    qb = q.pow(be)
    kernel = torch.where(plateau.to(torch.bool)[:, None, None].to(sx.device), 1.0 / (qb + 1.0), torch.exp(-0.5 * qb))
    kernel = kernel * _support_mask(size.to(sx.device), grid)
    return kernel / kernel.sum((1, 2), keepdim=True)


def sinc_kernel(size: torch.Tensor, omega: torch.Tensor, grid: int = 21) -> torch.Tensor:
    """BasicSR's ``circular_lowpass_kernel`` (2-D sinc, cutoff ω), ``[B, grid, grid]``, zero outside ``size``."""
    omega = _f64(omega)[:, None, None]
    x, y = _grid(grid, omega.device)
    r = torch.sqrt(x**2 + y**2)[None]
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    kernel = omega * torch.special.bessel_j1(omega * safe_r) / (2 * math.pi * safe_r)
    kernel = torch.where(r > 0, kernel, omega**2 / (4 * math.pi))
    kernel = kernel * _support_mask(size.to(omega.device), grid)
    return kernel / kernel.sum((1, 2), keepdim=True)


def pulse_kernel(batch: int, grid: int = 21, device: torch.device | None = None) -> torch.Tensor:
    """Identity kernels ``[B, grid, grid]`` (1 at the centre): filtering with them changes nothing."""
    kernel = torch.zeros(batch, grid, grid, dtype=torch.float64, device=device)
    kernel[:, grid // 2, grid // 2] = 1.0
    return kernel
