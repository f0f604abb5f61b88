"""Seeded start noise for restorers that integrate from noise (the noisy ablation, SD1.5 diffusion).

A noise-start restorer's output depends on its start noise, so evaluation must fix it. Each image
gets a seed from the loop's ``seed`` and its own input pixels (8-bit quantised, so an image read
from a file always gives the same seed), and each round draws that image's noise from a CPU
generator seeded by ``(image seed, round)``::

    image_seed[b] = blake2b(seed, H, W, round(255 * lq[b]))          # once, from the input image
    noise[b]      = randn([C, h, w], generator=blake2b(image_seed[b], round_index))

So the same image under the same seed always starts each round from the same noise — whichever
other images share its batch, on any device — different seeds give different noise, and two rounds
of one image do not reuse a draw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

_MASK = (1 << 63) - 1


def _digest(*parts: bytes) -> int:
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(part)
    return int.from_bytes(digest.digest(), "little") & _MASK


def image_seeds(images: torch.Tensor, seed: int) -> list[int]:
    """One 63-bit seed per image of ``images [B, 3, H, W]`` in ``[0, 1]`` (its 8-bit pixels and ``seed``)."""
    if images.ndim != 4:
        raise ValueError(f"image_seeds expects images [B, 3, H, W], got shape {tuple(images.shape)}")
    pixels = (images.detach().float().clamp(0, 1) * 255).round().to("cpu", torch.uint8)
    head = f"{int(seed)}:{images.shape[-2]}x{images.shape[-1]}:".encode()
    return [_digest(head, row.contiguous().numpy().tobytes()) for row in pixels]


def start_noise(like: torch.Tensor, seeds: Sequence[int], round_index: int) -> torch.Tensor:
    """``N(0, I)`` noise shaped like ``like [B, C, h, w]`` (its device and dtype); row ``b`` drawn
    from a CPU generator seeded by ``(seeds[b], round_index)``."""
    if like.ndim != 4 or len(seeds) != like.shape[0]:
        raise ValueError(f"start_noise expects latents [B, C, h, w] and B seeds, got shape {tuple(like.shape)} "
                         f"and {len(seeds)} seeds")
    rows = []
    for s in seeds:
        generator = torch.Generator().manual_seed(_digest(f"{int(s)}:{int(round_index)}".encode()))
        rows.append(torch.randn(like.shape[1:], generator=generator))
    return torch.stack(rows).to(like.device, like.dtype)
