"""The "Text, Latent" row of paper Table 4: RAR's latent loop, but the assessment reaches the UIR
as text through the text encoders instead of the text adapter.

Each round, on the latent state (one encode before the loop, one decode after it, as RAR)::

    text  = LQA.assess(z).text          # the latent LQA's decoded answer
    c     = TextEncoders(text)          # SD3.5's CLIP-L, CLIP-G, T5 (or SD1.5's CLIP-L)
    z_new = integrate UIR from z with c
    stop="compare": p_better(z_new, over=z) < threshold -> stop, keep z

It pairs with a UIR trained on text conditions (``condition=text``); its pixel counterpart
("Text, Pixel") is :class:`rar.baselines.NaivePipeline`. The loop is
:meth:`rar.pipeline.RARPipeline.forward` itself; only :meth:`assess` differs. The text encoders'
cache is cleared before every call by default (``cache_text=False``), as in the naive pipeline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rar.baselines.naive import text_pipeline_parts
from rar.conditioning.condition import Condition
from rar.core.timing import StageClock
from rar.lqa.model import Assessment, DepictQA
from rar.pipeline.base import InferencePipeline
from rar.pipeline.config import LoopConfig
from rar.pipeline.model_folder import realign
from rar.pipeline.pipeline import RARPipeline
from rar.pipeline.prompts import identification_question
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel


class TextLatentPipeline(RARPipeline):
    """Latent LQA → decoded text → text encoders → UIR, in RAR's latent loop.

    Args:
        autoencoder, uir, lqa: as in :class:`RARPipeline` (the LQA reads latents through its image
            adapter; a pixel-space LQA reads decoded images instead).
        conditioner: the text encoders (texts → :class:`Condition` of the UIR's widths).
        config: loop settings.
        cache_text: let the conditioner reuse embeddings of texts it has seen (False: encode every time).
    """

    def __init__(
        self,
        autoencoder: LatentAutoencoder,
        uir: UIRModel,
        lqa: DepictQA,
        conditioner: nn.Module,
        config: LoopConfig | None = None,
        cache_text: bool = False,
    ) -> None:
        InferencePipeline.__init__(self)  # RARPipeline's own __init__ wants a text adapter
        self._set_parts(autoencoder, uir, lqa, config)
        self.conditioner = conditioner
        self.text_adapter = None
        self.cache_text = cache_text
        realign(self)
        self.eval()

    def assess(self, z: torch.Tensor, round_index: int, step: int, clock: StageClock) -> tuple[Condition, Assessment]:
        """The LQA's answer for ``z`` (with the loop's question), encoded by the text encoders."""
        question = identification_question(self.config.prompt_pool, self.config.seed, round_index, step)
        assessment = self.lqa.assess(self._lqa_view(z, clock), question=question)
        with clock.section("text_encode"):
            if not self.cache_text:
                self.conditioner.clear_cache()
            cond = self.conditioner(assessment.text).to(z.device)
        return cond, assessment

    def save_pretrained(self, path: str | Path, lora: str = "adapter", conditioner: nn.Module | None = None,
                        overwrite: bool = False, source: dict | None = None) -> Path:
        """Write the model folder with this pipeline's text encoders and no text adapter."""
        return super().save_pretrained(path, lora, conditioner if conditioner is not None else self.conditioner,
                                       overwrite, source)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
        conditioner: nn.Module | None = None, cache_text: bool = False, **loop_settings,
    ) -> TextLatentPipeline:
        """Load a model folder (its ``text_adapter``, if any, is not used); the text encoders come
        from its ``conditioner/`` or the argument."""
        parts, config = text_pipeline_parts(path, device, dtype, conditioner)
        return cls(parts["autoencoder"], parts["uir"], parts["lqa"], parts["conditioner"],
                   config.replace(**loop_settings), cache_text=cache_text)
