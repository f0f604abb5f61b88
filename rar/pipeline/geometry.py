"""Image sizes the pipeline accepts: pad to the pipeline's stride, crop back afterwards.

The stride is the autoencoder's (4 for the tiny AutoencoderKL, 8 for SD3.5's VAE) times the backbone's latent
multiple (SD3: its patch size; SD1.5's UNet: 2 ** (down blocks - 1)). SD3's position table also
caps the latent grid (``pos_embed_max_size`` patches per side): larger inputs are an error that
names the largest image side the model takes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel


def latent_multiple(uir: UIRModel) -> int:
    """Latent sides must be multiples of this for the backbone."""
    config = uir.backbone.config
    if getattr(config, "patch_size", None) is not None:
        return int(config.patch_size)
    if getattr(config, "down_block_types", None) is not None:
        return 2 ** (len(config.down_block_types) - 1)
    return 1


def max_image_side(autoencoder: LatentAutoencoder, uir: UIRModel) -> int | None:
    """The largest image side the backbone's position table covers, or None if unbounded."""
    config = uir.backbone.config
    limit = getattr(config, "pos_embed_max_size", None)
    return None if limit is None else int(limit) * latent_multiple(uir) * autoencoder.stride


def pad_to_multiple(img: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``img [B, C, H, W]`` on the bottom/right to sides that are multiples of ``multiple``
    (reflect where the image is large enough, else replicate)."""
    h, w = img.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return img
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(img, (0, pw, 0, ph), mode=mode)


def check_images(lq: torch.Tensor, max_side: int | None) -> None:
    """``lq`` must be ``[B, 3, H, W]`` float with sides within ``max_side``."""
    if lq.ndim != 4 or lq.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W] in [0, 1], got shape {tuple(lq.shape)}")
    if not lq.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got dtype {lq.dtype}")
    if max_side is not None and max(lq.shape[-2:]) > max_side:
        raise ValueError(
            f"image size {tuple(lq.shape[-2:])} exceeds the largest side this model takes ({max_side} px: "
            "the backbone's pos_embed_max_size); resize or tile the input"
        )
