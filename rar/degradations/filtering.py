"""Per-image 2-D filtering: one kernel per image, applied to all channels with a grouped conv.

``filter2d`` reproduces OpenCV's ``cv2.filter2D`` semantics (correlation, anchor at the kernel
centre) with a chosen border rule, for a whole batch at once. Borders are built by index mapping,
so any kernel size works on any image size (OpenCV's rules, not torch's "pad < size" limit).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Border = Literal["reflect101", "replicate"]
BORDERS: tuple[str, ...] = ("reflect101", "replicate")


def border_index(idx: torch.Tensor, n: int, border: Border) -> torch.Tensor:
    """Map integer positions onto ``[0, n)``.

    ``reflect101`` is OpenCV's default ``BORDER_REFLECT_101`` / torch's ``"reflect"``
    (``… 2 1 | 0 1 2 … n-1 | n-2 …``); ``replicate`` repeats the edge pixel.
    """
    if border == "replicate":
        return idx.clamp(0, n - 1)
    if border != "reflect101":
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    m = idx.remainder(period)
    return torch.where(m >= n, period - m, m)


def pad2d(img: torch.Tensor, top: int, bottom: int, left: int, right: int, border: Border) -> torch.Tensor:
    """Extend ``img [..., H, W]`` by the given amounts (negative amounts crop) using ``border``."""
    h, w = img.shape[-2:]
    rows = border_index(torch.arange(-top, h + bottom, device=img.device), h, border)
    cols = border_index(torch.arange(-left, w + right, device=img.device), w, border)
    return img.index_select(-2, rows).index_select(-1, cols)


def filter2d(img: torch.Tensor, kernel: torch.Tensor, border: Border = "reflect101") -> torch.Tensor:
    """Correlate image ``b`` with ``kernel[b]`` on every channel, output the same size.

    ``out[b, c, y, x] = Σ_{i,j} kernel[b, i, j] · img[b, c, y + i − R, x + j − R]`` with ``R = S // 2``
    and out-of-image pixels taken by ``border`` (as ``cv2.filter2D(img, -1, kernel, borderType=…)``).

    Args:
        img: ``[B, C, H, W]`` float.
        kernel: ``[B, S, S]`` with ``S`` odd; not normalised here.
        border: ``"reflect101"`` (OpenCV default) or ``"replicate"``.

    Returns:
        ``[B, C, H, W]``, unclipped.
    """
    if img.ndim != 4:
        raise ValueError(f"filter2d expects img [B, C, H, W], got {tuple(img.shape)}")
    b, c, h, w = img.shape
    if kernel.ndim != 3 or kernel.shape[0] != b or kernel.shape[1] != kernel.shape[2] or kernel.shape[1] % 2 == 0:
        raise ValueError(f"filter2d expects kernel [B={b}, S, S] with S odd, got {tuple(kernel.shape)}")
    radius = kernel.shape[1] // 2
    # Crop the all-zero rim the batch shares (line kernels fill a fraction of their box).
    support = kernel.abs().sum(0) > 0
    rows = support.any(1).nonzero()
    cols = support.any(0).nonzero()
    if rows.numel() == 0:
        return torch.zeros_like(img)
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    k = kernel[:, r0 : r1 + 1, c0 : c1 + 1].to(img.dtype)
    padded = pad2d(img, radius - r0, r1 - radius, radius - c0, c1 - radius, border)
    weight = k.repeat_interleave(c, dim=0).unsqueeze(1)  # [B*C, 1, kh, kw]
    out = F.conv2d(padded.reshape(1, b * c, *padded.shape[-2:]), weight, groups=b * c)
    return out.reshape(b, c, h, w)
