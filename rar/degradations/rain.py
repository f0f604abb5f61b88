"""Synthetic rain streaks, AgenticIR's "rain" (adapted there from MiOIR), batched in torch.

Per image (OpenCV semantics reproduced exactly, up to float rounding):

1. ``field ~ U[0, 256)`` per pixel; keep only values ``≥ 256 − density/100`` (≈0.2–0.4 % of pixels);
2. blur with ``[[0, .1, 0], [.1, 8, .1], [0, .1, 0]]``;
3. streak kernel: the ``L × L`` identity matrix warped by ``getRotationMatrix2D((L/2, L/2),
   angle − 45, 1 − L/100)`` (bilinear, zero outside), then ``GaussianBlur(3×3)`` (``[¼, ½, ¼]``);
4. filter the drops with it (``cv2.filter2D``: anchor ``L//2``, reflect-101 border), min–max
   normalise to 0–255 and truncate to 8 bits (``np.uint8``);
5. add the grey streak layer to all three channels and clip.
"""

from __future__ import annotations

import torch

from rar.degradations.filtering import filter2d

DROP_KERNEL = ((0.0, 0.1, 0.0), (0.1, 8.0, 0.1), (0.0, 0.1, 0.0))
_BLUR_3 = (0.25, 0.5, 0.25)  # cv2.getGaussianKernel(3, sigma<=0)
_SUBPIXEL = 32  # cv2.warpAffine resolves source positions to 1/32 pixel (INTER_BITS = 5)


def _warped_identity(x: torch.Tensor, y: torch.Tensor, length: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Value of ``warpAffine(eye(L), getRotationMatrix2D((L/2, L/2), rotation, 1 − L/100))`` at integer ``(x, y)``.

    ``x, y``: ``[B, S, S]`` integer-valued float64 positions in the ``L × L`` kernel; ``length``,
    ``rotation`` (degrees): ``[B]``.
    """
    ell = length.to(torch.float64)[:, None, None]
    scale = 1.0 - ell / 100.0
    theta = torch.deg2rad(rotation.to(torch.float64))[:, None, None]
    alpha, beta = torch.cos(theta) * scale, torch.sin(theta) * scale
    c = ell / 2.0
    m02 = (1 - alpha) * c - beta * c
    m12 = beta * c + (1 - alpha) * c
    # cv2.invertAffineTransform of [[alpha, beta, m02], [-beta, alpha, m12]]
    inv_det = 1.0 / (alpha * alpha + beta * beta)
    a11, a12, a21, a22 = alpha * inv_det, -beta * inv_det, beta * inv_det, alpha * inv_det
    b1 = -a11 * m02 - a12 * m12
    b2 = -a21 * m02 - a22 * m12
    # cv2's fixed point: 1/1024 steps per term (rounded half-to-even), then 1/32-pixel bins
    ab_scale, round_delta = 1024.0, 16.0
    qx = torch.floor((torch.round((a12 * y + b1) * ab_scale) + round_delta + torch.round(a11 * x * ab_scale)) / 32.0)
    qy = torch.floor((torch.round((a22 * y + b2) * ab_scale) + round_delta + torch.round(a21 * x * ab_scale)) / 32.0)
    ix, iy = torch.floor(qx / _SUBPIXEL), torch.floor(qy / _SUBPIXEL)
    fx, fy = qx / _SUBPIXEL - ix, qy / _SUBPIXEL - iy
    value = torch.zeros_like(x)
    for ox, wx in ((0, 1 - fx), (1, fx)):
        for oy, wy in ((0, 1 - fy), (1, fy)):
            cx, cy = ix + ox, iy + oy
            on_diagonal = (cx == cy) & (cx >= 0) & (cx < ell)
            value = value + wx * wy * on_diagonal.to(x.dtype)
    return value


def rain_kernel(length: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Streak kernels ``[B, S, S]`` (``S = 2·max(L//2) + 1``), each ``L × L`` block placed so that
    OpenCV's anchor ``(L//2, L//2)`` is the centre. Not normalised (AgenticIR does not normalise).

    Args:
        length: ``[B]`` integer ``L ≥ 2`` (AgenticIR: 20–39).
        rotation: ``[B]`` degrees passed to ``getRotationMatrix2D`` (AgenticIR: ``angle − 45``).
    """
    length = torch.as_tensor(length).to(torch.long)
    if (length < 2).any() or (length >= 100).any():
        raise ValueError(f"rain_kernel length must be in [2, 99], got {length.tolist()}")
    radius = int((length // 2).max())
    size = 2 * radius + 1
    ax = torch.arange(size, dtype=torch.float64)
    offset = (radius - length // 2).to(torch.float64)[:, None, None]
    x = ax[None, None, :] - offset  # [B, 1, S] position inside the L × L block
    y = ax[None, :, None] - offset  # [B, S, 1]
    x, y = torch.broadcast_tensors(x, y)
    ell = length[:, None, None]
    out = torch.zeros_like(x)
    for oy, wy in zip((-1, 0, 1), _BLUR_3):
        for ox, wx in zip((-1, 0, 1), _BLUR_3):
            # GaussianBlur's reflect-101 border lives inside the L × L block
            rx = _reflect(x + ox, ell)
            ry = _reflect(y + oy, ell)
            out = out + wx * wy * _warped_identity(rx, ry, length, torch.as_tensor(rotation))
    inside = (x >= 0) & (x < ell) & (y >= 0) & (y < ell)
    return out * inside


def _reflect(pos: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Reflect-101 per image: ``pos [B, S, S]`` onto ``[0, L_b)``."""
    period = (2 * (length - 1)).to(pos.dtype)
    m = pos.remainder(period)
    return torch.where(m >= length, period - m, m)


def rain_layer(field: torch.Tensor, density: torch.Tensor, length: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """The grey streak layer ``[B, 1, H, W]`` in ``[0, 1]`` (multiples of 1/255) from a uniform field.

    Args:
        field: ``[B, 1, H, W]`` samples of ``U[0, 1)`` (scaled ×256 internally, like ``np.random.uniform(0, 256)``).
        density: ``[B]`` AgenticIR ``value`` (50–99): drops keep field values ``≥ 256 − density/100``.
        length: ``[B]`` streak kernel size (20–39).
        angle: ``[B]`` degrees (−30–29); the kernel is rotated by ``angle − 45``.
    """
    b = field.shape[0]
    dev = field.device
    density = torch.as_tensor(density, dtype=field.dtype, device=dev).view(b, 1, 1, 1)
    values = field * 256.0
    drops = torch.where(values >= 256.0 - density * 0.01, values, torch.zeros_like(values))
    drop_kernel = torch.tensor(DROP_KERNEL, dtype=torch.float64, device=dev).expand(b, 3, 3)
    drops = filter2d(drops, drop_kernel, border="reflect101")
    kernel = rain_kernel(torch.as_tensor(length).cpu(), torch.as_tensor(angle).cpu().to(torch.float64) - 45.0)
    streaks = filter2d(drops, kernel.to(dev), border="reflect101")
    lo = streaks.amin((1, 2, 3), keepdim=True)
    hi = streaks.amax((1, 2, 3), keepdim=True)
    span = hi - lo
    norm = torch.where(
        span > 0, (streaks - lo) * 255.0 / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(streaks)
    )
    return torch.floor(norm) / 255.0


def rain(
    img: torch.Tensor,
    density: torch.Tensor,
    length: torch.Tensor,
    angle: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Add rain streaks (see module doc). ``img [B, 3, H, W]`` in ``[0, 1]``; params ``[B]``; clipped output."""
    b, _, h, w = img.shape
    field = torch.rand((b, 1, h, w), generator=generator, device=generator.device, dtype=img.dtype).to(img.device)
    return (img + rain_layer(field, density, length, angle)).clamp(0.0, 1.0)
