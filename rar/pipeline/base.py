"""Plumbing shared by the inference pipelines (RAR and the baselines): eval mode, device, stride,
fast paths and the evaluation protocol."""

from __future__ import annotations

import torch
from peft import PeftModel
from torch import nn

from rar.core.compile import compile_module
from rar.core.outputs import MethodOutput
from rar.core.timing import StageClock
from rar.lqa.static_decode import StaticDecoder
from rar.pipeline.fast_paths import FastPaths
from rar.pipeline.geometry import (
    check_images,
    latent_multiple,
    max_image_side,
    pad_to_multiple,
)
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel


class InferencePipeline(nn.Module):
    """Base of the pipelines: subclasses set ``autoencoder`` and ``uir`` in ``__init__``."""

    autoencoder: LatentAutoencoder
    uir: UIRModel
    fast: FastPaths = FastPaths()
    tiles_large_inputs: bool = False
    """Whether inputs over the backbone's largest side are restored in tiles (else refused)."""

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

    def set_fast_paths(self, fast: FastPaths | dict | None) -> InferencePipeline:
        """Switch the fast paths (:class:`FastPaths`, a mapping of its fields, or None for the
        defaults): compiles or un-compiles the UIR, merges or unmerges the LQA's LoRA, sets its prefix
        cache and its static-cache decoder, if any."""
        fast = FastPaths.of(fast)
        if fast.compile_uir != self.fast.compile_uir:
            compile_module(self.uir.backbone, fast.compile_uir)
        lqa = getattr(self, "lqa", None)
        if fast.merge_lora != self.fast.merge_lora and isinstance(getattr(lqa, "llm", None), PeftModel):
            lqa.llm.merge_adapter() if fast.merge_lora else lqa.llm.unmerge_adapter()
        if fast.prefix_cache is not None and lqa is not None and hasattr(lqa, "prefix_cache"):
            lqa.prefix_cache = fast.prefix_cache
        if lqa is not None and hasattr(lqa, "static_decoder") and (
                (fast.static_decode, fast.compile_decode) != (self.fast.static_decode, self.fast.compile_decode)):
            lqa.static_decoder = StaticDecoder(compile_step=fast.compile_decode) if fast.static_decode else None
        self.fast = fast
        return self

    def prepare(self, lq: torch.Tensor, clock: StageClock) -> torch.Tensor:
        """Check ``lq [B, 3, H, W]`` and pad it to the stride, on the pipeline's device (timed as
        ``preprocess``)."""
        with clock.section("preprocess"):
            check_images(lq, None if self.tiles_large_inputs else max_image_side(self.autoencoder, self.uir))
            return pad_to_multiple(lq.to(self.device, torch.float32), self.stride)

    def restore(self, lq: torch.Tensor) -> MethodOutput:
        """The evaluation harness's :class:`rar.eval.method.Method` protocol."""
        return self(lq).to_method_output()
