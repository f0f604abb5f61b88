"""Seeded start noise for restorers that integrate from noise (the noisy ablation, SD1.5 diffusion).

A noise-start restorer's output depends on its start noise, so evaluation must fix it. Each row
(image, or latent tile) gets its own noise from a CPU generator seeded by the loop's ``seed``, the
round and the row's own values::

    seed_b = blake2b(seed, round_index, bytes of float32 z[b])   # 64 bits
    noise[b] = randn(z[b].shape, generator=seed_b)

So the same image under the same seed and round always starts from the same noise — whichever
other images share its batch, on any device — different seeds give different noise, and two
rounds of one image do not reuse a draw.
"""

from __future__ import annotations

import hashlib

import torch


def row_seed(row: torch.Tensor, seed: int, round_index: int) -> int:
    """The 64-bit generator seed of one row ``[C, h, w]`` (its float32 bytes, ``seed``, ``round_index``)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{int(seed)}:{int(round_index)}:".encode())
    digest.update(row.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest(), "little") & ((1 << 63) - 1)


def seeded_noise(like: torch.Tensor, seed: int, round_index: int) -> torch.Tensor:
    """``N(0, I)`` noise shaped like ``like [B, C, h, w]`` (its device and dtype), row ``b`` seeded by
    :func:`row_seed` of ``like[b]``."""
    if like.ndim != 4:
        raise ValueError(f"seeded_noise expects latents [B, C, h, w], got shape {tuple(like.shape)}")
    rows = [torch.randn(like.shape[1:], generator=torch.Generator().manual_seed(row_seed(r, seed, round_index)))
            for r in like]
    return torch.stack(rows).to(like.device, like.dtype)
