"""Plumbing shared by the inference pipelines (RAR, naive, CLIP-IQA): eval mode, device, stride,
fast paths, the evaluation protocol, and the loop of the pipelines whose state is the image."""

from __future__ import annotations

import torch
from peft import PeftModel
from torch import nn

from rar.eval.method import MethodOutput
from rar.pipeline.config import LoopConfig
from rar.pipeline.fast_paths import FastPaths, compile_module
from rar.pipeline.geometry import (
    check_images,
    latent_multiple,
    max_image_side,
    pad_to_multiple,
)
from rar.pipeline.loop import Wiring, run_rounds
from rar.pipeline.results import RestoreResult
from rar.pipeline.timing import StageClock
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel


class InferencePipeline(nn.Module):
    """Base of the pipelines: subclasses set ``autoencoder`` and ``uir`` in ``__init__``."""

    autoencoder: LatentAutoencoder
    uir: UIRModel
    fast: FastPaths = FastPaths()

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
        defaults): compiles or un-compiles the UIR, merges or unmerges the LQA's LoRA and sets its prefix cache, if any."""
        fast = FastPaths.of(fast)
        if fast.compile_uir != self.fast.compile_uir:
            compile_module(self.uir.backbone, fast.compile_uir)
        lqa = getattr(self, "lqa", None)
        if fast.merge_lora != self.fast.merge_lora and isinstance(getattr(lqa, "llm", None), PeftModel):
            lqa.llm.merge_adapter() if fast.merge_lora else lqa.llm.unmerge_adapter()
        if fast.prefix_cache is not None and lqa is not None and hasattr(lqa, "prefix_cache"):
            lqa.prefix_cache = fast.prefix_cache
        self.fast = fast
        return self

    def restore(self, lq: torch.Tensor) -> MethodOutput:
        """The evaluation harness's :class:`rar.eval.method.Method` protocol."""
        return self(lq).to_method_output()


class PixelStatePipeline(InferencePipeline):
    """Base of the pipelines whose loop state is the (padded) image: naive and CLIP-IQA. A
    subclass supplies its :class:`rar.pipeline.loop.Wiring`; the padding, the rounds under the
    fast paths and the crop back are shared."""

    config: LoopConfig

    def wiring(self, clock: StageClock) -> Wiring:
        raise NotImplementedError(f"{type(self).__name__} must implement wiring(clock) -> Wiring")

    @torch.no_grad()
    def forward(self, lq: torch.Tensor, return_latents: bool = False) -> RestoreResult:
        """Restore ``lq [B, 3, H, W]`` in ``[0, 1]``; ``return_latents`` keeps each round's output
        image (padded, CPU) in the trajectories' ``latent`` field (same call as RARPipeline)."""
        clock = StageClock(self.device)
        height, width = lq.shape[-2:]
        with self.fast.context(self.device):
            with clock.section("preprocess"):
                check_images(lq, max_image_side(self.autoencoder, self.uir))
                x = pad_to_multiple(lq.to(self.device, torch.float32), self.stride)
            outcome = run_rounds(x, self.wiring(clock), self.config, clock, keep_states=return_latents)
        return RestoreResult(outcome.states[..., :height, :width], outcome.trajectories, dict(clock.seconds))

    def state_image(self, state: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A round's kept state (a padded image ``[3, H', W']``) cropped to ``size``."""
        return state[:, : size[0], : size[1]].cpu()
