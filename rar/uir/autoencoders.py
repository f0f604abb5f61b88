"""Frozen autoencoders between images and the restorer's latent space, behind one interface.

Every autoencoder maps images ``[B, 3, H, W]`` in ``[0, 1]`` to latents ``[B, latent_channels,
ceil(H / stride), ceil(W / stride)]`` already scaled/shifted the way the backbone expects, and back.
Sides that are not multiples of ``stride`` are reflect-padded on the bottom/right before encoding;
the latent does not remember the original size: pass ``size=(H, W)`` to :meth:`decode` to crop the
image back (the RAR loop keeps the input size for that).

* :class:`KLAutoencoder` — a diffusers ``AutoencoderKL`` (SD3.5: 16 channels, ``(z - 0.0609) *
  1.5305``; SD1.5: 4 channels, ``z * 0.18215``; the tiny experiment's :data:`TINY_VAE`, trained by
  ``stage=autoencoder``), built by :func:`build_kl_autoencoder`.
* :class:`SpaceToDepthAutoencoder` — lossless ``pixel_unshuffle`` (factor 4 → 48 channels; latent
  values are the pixels). The tiny experiment's former VAE stand-in, kept for measurements: a
  patch-1 UIR on it paints a 4-px block grid (``tests/test_block_texture.py``).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from rar.utils.paths import pretrained_source

log = logging.getLogger(__name__)

TINY_VAE: dict = dict(
    in_channels=3, out_channels=3, latent_channels=16,  # SD3.5's latent width
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 32),  # stride 2 ** (3 - 1) = 4: the tiny UIR's patch-1 tokens are 4 x 4 px
    layers_per_block=1,
    norm_num_groups=1,  # one group: GroupNorm keeps each image's per-channel colour statistics
    mid_block_add_attention=False, sample_size=64,
)
"""The tiny experiment's ``AutoencoderKL`` (SD3.5's VAE class; 245K parameters). Choices measured in
docs/experiments.md (stride 4 vs 2, GroupNorm groups, widths)."""


def tiny_vae(**overrides) -> AutoencoderKL:
    """A randomly initialised :data:`TINY_VAE` (``overrides`` replace its arguments)."""
    return AutoencoderKL(**(TINY_VAE | overrides))


class LatentAutoencoder(torch.nn.Module):
    """Base class: padding, cropping, input checks, and "always frozen, always eval".

    Subclasses set ``latent_channels`` and ``stride`` and implement ``_encode``/``_decode`` on
    inputs whose sides are multiples of ``stride``.
    """

    latent_channels: int
    stride: int

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LatentAutoencoder:
        """Stays in eval mode whatever the caller asks (the autoencoder is never trained)."""
        return super().train(False)

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """Latent ``(h, w)`` for an image of ``(height, width)`` (after padding)."""
        return -(-height // self.stride), -(-width // self.stride)

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """``img [B, 3, H, W]`` in ``[0, 1]`` → latent ``[B, latent_channels, ceil(H/s), ceil(W/s)]`` (float32)."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}.encode expects images [B, 3, H, W], got {tuple(img.shape)}")
        h, w = img.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            img = F.pad(img, (0, pw, 0, ph), mode=mode)
        return self._encode(img)

    def decode(self, z: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Latent ``[B, latent_channels, h, w]`` → image ``[B, 3, h*s, w*s]`` in ``[0, 1]`` (float32),
        cropped to ``size = (H, W)`` when given (the size of the image that was encoded)."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"{type(self).__name__}.decode expects latents [B, {self.latent_channels}, h, w], got {tuple(z.shape)}"
            )
        img = self._decode(z)
        if size is not None:
            height, width = int(size[0]), int(size[1])
            if height > img.shape[-2] or width > img.shape[-1]:
                raise ValueError(f"crop size {(height, width)} exceeds the decoded size {tuple(img.shape[-2:])}")
            img = img[..., :height, :width]
        return img

    def _encode(self, img: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class SpaceToDepthAutoencoder(LatentAutoencoder):
    """Lossless space-to-depth: ``factor x factor`` pixel blocks become channels (4 → 48 channels).

    ``decode(encode(x), size=x.shape[-2:]) == x`` exactly, for any size.
    """

    def __init__(self, factor: int = 4) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"space-to-depth factor must be >= 1, got {factor}")
        self.stride = factor
        self.latent_channels = 3 * factor * factor
        self._freeze()

    def _encode(self, img: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(img.float(), self.stride)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(z.float(), self.stride)


class KLAutoencoder(LatentAutoencoder):
    """A frozen diffusers ``AutoencoderKL`` with the backbone's latent scale and shift.

    ``encode``: ``z = (E(2x - 1) - shift) * scale`` where ``E`` is the posterior mean (or a sample
    when ``sample_posterior``; RAR's flow is noise-free, so the mean is the default).
    ``decode``: ``x = clamp((D(z / scale + shift) + 1) / 2, 0, 1)``.
    """

    def __init__(
        self, vae: AutoencoderKL, scaling_factor: float, shift_factor: float = 0.0, sample_posterior: bool = False
    ) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(scaling_factor)
        self.shift_factor = float(shift_factor)
        self.sample_posterior = sample_posterior
        self.latent_channels = int(vae.config.latent_channels)
        self.stride = 2 ** (len(vae.config.block_out_channels) - 1)
        self._freeze()

    def _encode(self, img: torch.Tensor) -> torch.Tensor:
        dist = self.vae.encode(img.to(self.vae.dtype) * 2 - 1).latent_dist
        z = dist.sample() if self.sample_posterior else dist.mode()
        return ((z - self.shift_factor) * self.scaling_factor).float()

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        z = (z / self.scaling_factor + self.shift_factor).to(self.vae.dtype)
        img = self.vae.decode(z).sample
        return ((img.float() + 1) / 2).clamp(0, 1)


def build_kl_autoencoder(
    pretrained: str,
    subfolder: str | None = "vae",
    scaling_factor: float | None = None,
    shift_factor: float | None = None,
    sample_posterior: bool = False,
    torch_dtype: str | None = None,
) -> KLAutoencoder:
    """Load an ``AutoencoderKL`` from a local diffusers folder or hub id.

    Args:
        pretrained: model folder / hub id (e.g. an SD3.5 or SD1.5 repository).
        subfolder: the VAE's subfolder (``"vae"`` in pipeline repositories; None for a bare VAE).
        scaling_factor, shift_factor: latent scale/shift; None takes the VAE config's values
            (SD3.5: 1.5305 / 0.0609; SD1.5: 0.18215 / none → 0).
        sample_posterior: sample the posterior instead of taking its mean.
        torch_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``; None keeps the saved dtype.
    """
    dtype = getattr(torch, torch_dtype) if torch_dtype is not None else None
    vae = AutoencoderKL.from_pretrained(pretrained_source(pretrained, "autoencoder.pretrained"), subfolder=subfolder,
                                        torch_dtype=dtype)
    cfg_scale, cfg_shift = vae.config.scaling_factor, vae.config.shift_factor
    if scaling_factor is None:
        scaling_factor = cfg_scale
    elif cfg_scale is not None and abs(cfg_scale - scaling_factor) > 1e-6:
        log.warning("%s: scaling_factor %s overrides the VAE config's %s", pretrained, scaling_factor, cfg_scale)
    if shift_factor is None:
        shift_factor = cfg_shift or 0.0
    elif cfg_shift is not None and abs(cfg_shift - shift_factor) > 1e-6:
        log.warning("%s: shift_factor %s overrides the VAE config's %s", pretrained, shift_factor, cfg_shift)
    return KLAutoencoder(vae, scaling_factor, shift_factor, sample_posterior)
