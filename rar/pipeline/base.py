"""Plumbing shared by the inference pipelines (RAR, naive, CLIP-IQA): eval mode, device, stride."""

from __future__ import annotations

import torch
from torch import nn

from rar.pipeline.geometry import latent_multiple
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel


class InferencePipeline(nn.Module):
    """Base of the pipelines: subclasses set ``autoencoder`` and ``uir`` in ``__init__``."""

    autoencoder: LatentAutoencoder
    uir: UIRModel

    def train(self, mode: bool = True) -> InferencePipeline:
        """Inference only: stays in eval mode (no LoRA/adapter dropout)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.uir.parameters()).device

    @property
    def stride(self) -> int:
        """Input sides are padded to multiples of this (and cropped back)."""
        return self.autoencoder.stride * latent_multiple(self.uir)
