"""The input's detail that a lossy autoencoder drops, handed back to the decoded output, its noise
shrunk away.

A round is decoded from a latent, so what the encoder dropped from the input (fine detail, thin
rain streaks, the texture of a dark image) is missing from every output, however good the round.
The residual ``r = x - D(E(x))`` holds that detail, but for a noisy input it holds the noise too
(the encoder drops noise as well). The residual is therefore shrunk before it is added, per pixel
and channel, by the gain of a local power-subtraction (Wiener-type) filter::

    sigma  = median(|HH_1(r)|) / 0.6745        # the residual's noise level (Donoho's MAD rule, finest Haar diagonal)
    energy = box_k(r ** 2)                     # the residual's local energy, k x k window
    detail = clamp(1 - c * sigma**2 / energy, 0, 1) * r

Where the residual is noise its local energy is about ``sigma**2`` and the gain falls to zero;
where it is structure (an edge, a streak) well above the noise it stays. No learnt parameters: a
learnt head overfitted the tiny experiment's nine training photos (docs/experiments.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAD_TO_SIGMA = 0.6745
"""Median absolute deviation of a unit Gaussian: ``sigma = MAD / 0.6745``."""


def noise_sigma(images: torch.Tensor) -> torch.Tensor:
    """Per-image noise level of ``images [B, C, H, W]`` (``[B]``), from the median magnitude of the
    finest Haar diagonal coefficients over all channels (robust to sparse structure such as edges)."""
    if images.ndim != 4 or images.shape[-2] < 2 or images.shape[-1] < 2:
        raise ValueError(f"noise_sigma expects images [B, C, H, W] of at least 2 x 2 px, got {tuple(images.shape)}")
    h, w = images.shape[-2] // 2 * 2, images.shape[-1] // 2 * 2
    a = images[..., :h, :w]
    diagonal = (a[..., 0::2, 0::2] - a[..., 0::2, 1::2] - a[..., 1::2, 0::2] + a[..., 1::2, 1::2]) / 2
    return diagonal.abs().flatten(1).median(dim=1).values / MAD_TO_SIGMA


def input_detail(inputs: torch.Tensor, reconstructions: torch.Tensor, kernel: int = 5,
                 over_subtraction: float = 2.0) -> torch.Tensor:
    """What to add to a decoded output of ``inputs [B, 3, H, W]`` whose autoencoder reconstruction
    is ``reconstructions`` (same shape): their difference, noise shrunk away (module docstring).

    Args:
        kernel: side of the local-energy window (odd).
        over_subtraction: ``c``, how many noise powers a pixel's local energy must exceed to pass
            whole (1: the plain Wiener gain).
    """
    if inputs.shape != reconstructions.shape or inputs.ndim != 4:
        raise ValueError(f"inputs {tuple(inputs.shape)} and reconstructions {tuple(reconstructions.shape)} "
                         "must both be [B, C, H, W] of one shape")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd number, got {kernel}")
    residual = inputs.float() - reconstructions.float()
    sigma = noise_sigma(residual)[:, None, None, None]
    pad = kernel // 2
    mode = "reflect" if min(residual.shape[-2:]) > pad else "replicate"
    energy = F.avg_pool2d(F.pad(residual.square(), (pad,) * 4, mode=mode), kernel, stride=1)
    gain = (1 - over_subtraction * sigma.square() / energy.clamp_min(1e-12)).clamp(0, 1)
    return gain * residual
