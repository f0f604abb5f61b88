"""Block-periodic texture: the grid a patch-wise latent decoder can leave on restored images.

A restorer whose tokens each predict one ``p x p`` pixel block on their own (a patch-1 MMDiT on
the space-to-depth latent) leaves a pattern that repeats every ``p`` pixels. Averaging the image
over all blocks keeps exactly that pattern (and cancels everything without period ``p``);
:func:`block_periodic_energy` is its mean energy.
"""

from __future__ import annotations

import torch


def block_periodic_energy(images: torch.Tensor, period: int = 4, border: int = 0) -> torch.Tensor:
    """Mean squared deviation of the ``period x period`` phase-averaged image from its mean.

    Args:
        images: ``[B, C, H, W]`` (any range).
        period: block side in pixels (the autoencoder's stride times the patch size).
        border: pixels dropped on every side first (padding effects at the edges).

    Returns:
        ``[B]``: 0 for an image with no component of period ``period`` (e.g. a flat one).
    """
    if images.ndim != 4:
        raise ValueError(f"block_periodic_energy expects images [B, C, H, W], got {tuple(images.shape)}")
    if border:
        images = images[..., border:-border, border:-border]
    b, c, h, w = images.shape
    h, w = h - h % period, w - w % period
    if h == 0 or w == 0:
        raise ValueError(f"images of {tuple(images.shape[-2:])} px hold no full {period}-px block")
    blocks = images[..., :h, :w].float().reshape(b, c, h // period, period, w // period, period)
    phase_mean = blocks.mean(dim=(2, 4))  # [B, C, period, period]
    return (phase_mean - phase_mean.mean(dim=(-2, -1), keepdim=True)).pow(2).mean(dim=(1, 2, 3))
