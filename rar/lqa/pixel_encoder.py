"""DepictQA's pixel vision path up to the abstractor: CLIP patch features of an image batch.

DepictQA feeds CLIP ViT-L/14 images at (almost) native size: each side is padded to a multiple
of the patch size (``CustomTransform`` centre-pads with black), CLIP's positional embedding is
interpolated to the patch grid, and the features are the last encoder layer's patch tokens
without ``ln_post`` (``forward_patch_features``: class token dropped). Hugging Face's
``CLIPVisionModel.last_hidden_state`` is exactly that layer output; its position interpolation
uses ``align_corners=False`` where OpenAI's code uses ``True`` (a small numeric difference at
non-native sizes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionModel

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class PixelEncoder(nn.Module):
    """Images ``[B, 3, H, W]`` in ``[0, 1]`` → CLIP patch features ``[B, N, D]``.

    Args:
        clip: a (frozen) ``CLIPVisionModel``.
        max_size: images whose longer side exceeds this are resized down (keeping the aspect
            ratio) first, as DepictQA's ``max_size``; ``None`` keeps every size.
    """

    def __init__(self, clip: CLIPVisionModel, max_size: int | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.max_size = max_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def hidden_dim(self) -> int:
        return self.clip.config.hidden_size

    @property
    def patch_size(self) -> int:
        return self.clip.config.patch_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"PixelEncoder expects images [B, 3, H, W] in [0, 1], got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if self.max_size is not None and max(h, w) > self.max_size:
            scale = self.max_size / max(h, w)
            h, w = round(h * scale), round(w * scale)
            images = F.interpolate(images, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        p = self.patch_size
        ph, pw = (-h) % p, (-w) % p
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        if ph or pw:  # centre pad with black (normalised), as DepictQA's center_crop does
            black = ((0 - self.mean) / self.std).to(x.dtype)
            padded = black.expand(x.shape[0], 3, h + ph, w + pw).clone()
            padded[:, :, ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w] = x
            x = padded
        x = x.to(self.clip.dtype)
        out = self.clip(pixel_values=x, interpolate_pos_encoding=True)
        return out.last_hidden_state[:, 1:]
