"""RGB ↔ HSV for batched float images (the colour model AgenticIR's "dark" edits).

Float HSV with every component in ``[0, 1]`` (hue as a fraction of a turn), the same model as
``colorsys`` / OpenCV's float conversion; OpenCV's uint8 variant additionally quantises H to
180 levels and S to 256, which we do not reproduce (it only adds small colour errors).
"""

from __future__ import annotations

import torch


def _check(img: torch.Tensor, what: str) -> None:
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"{what} expects [B, 3, H, W], got {tuple(img.shape)}")


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` RGB in ``[0, 1]`` → HSV in ``[0, 1]`` (H = 0 and S = 0 for greys, V = max(R, G, B))."""
    _check(img, "rgb_to_hsv")
    r, g, b = img.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    zero = torch.zeros_like(maxc)
    sat = torch.where(maxc > 0, delta / maxc, zero)
    grey = delta == 0
    d = torch.where(grey, torch.ones_like(delta), delta)
    hue = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    hue = torch.where(grey, zero, (hue / 6.0).remainder(1.0))
    return torch.stack([hue, sat, maxc], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`: ``[B, 3, H, W]`` HSV in ``[0, 1]`` → RGB in ``[0, 1]``.

    Closed form: channel ``c = V − V·S·clamp(min(k, 4 − k), 0, 1)`` with ``k = (n + 6H) mod 6`` and
    ``n = 5, 3, 1`` for R, G, B.
    """
    _check(hsv, "hsv_to_rgb")
    h, s, v = hsv[:, 0:1], hsv[:, 1:2], hsv[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(1, 3, 1, 1)
    k = (n + 6.0 * h).remainder(6.0)
    return v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
