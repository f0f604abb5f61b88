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
    maxc = img.amax(1)
    minc = img.amin(1)
    delta = maxc - minc
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, (hue / 6.0).remainder(1.0), torch.zeros_like(hue))
    return torch.stack([hue, sat, maxc], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`: ``[B, 3, H, W]`` HSV in ``[0, 1]`` → RGB in ``[0, 1]``."""
    _check(hsv, "hsv_to_rgb")
    h, s, v = hsv.unbind(1)
    h6 = h.remainder(1.0) * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    sector = sector.long().remainder(6)
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    # rows: sector 0..5; columns: the value of R, G, B in that sector
    choices = torch.stack([v, q, p, p, t, v, t, v, v, q, p, p, p, p, t, v, v, q], dim=1)  # [B, 18, H, W]
    choices = choices.view(hsv.shape[0], 3, 6, *hsv.shape[2:])
    index = sector[:, None, None].expand(-1, 3, 1, -1, -1)
    return choices.gather(2, index).squeeze(2)
