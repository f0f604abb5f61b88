"""The naive iterative pipeline (paper Eq. 1–2), for the ablations and the speed comparison.

Each round works on pixels and goes through text::

    text  = IQA(x)                      # pixel-space DepictQA, decoded answer
    c     = TextEncoders(text)          # SD3.5's CLIP-L, CLIP-G, T5
    x_new = AE.decode(UIR(AE.encode(x), c))        # one encode and one decode per round
                                                   # (noise-start UIR: seeded noise, AE.encode(x) concatenated)
    stop="compare": p_better(x_new, over=x) < threshold -> stop, keep x

Same per-image stop bookkeeping as :class:`rar.pipeline.RARPipeline` (:class:`rar.pipeline.rounds.ActiveRounds`,
through :func:`rar.baselines.loop.run_rounds`); the stages are pixel ones. The text encoders' cache is
cleared before every call by default (``cache_text=False``) so their cost is measured, as the
naive method pays it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rar.baselines.loop import PixelStatePipeline
from rar.conditioning.condition import Condition
from rar.conditioning.sd3_text import SD3TextConditioner
from rar.core.timing import StageClock
from rar.lqa.model import DepictQA
from rar.pipeline.config import LoopConfig
from rar.pipeline.model_folder import parse_dtype, read_model_folder, realign
from rar.pipeline.pipeline import RARPipeline
from rar.pipeline.prompts import comparison_question, identification_question
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel
from rar.uir.round import restore_round


class NaivePipeline(PixelStatePipeline):
    """Pixel IQA → text → text encoders → restore → decode → repeat.

    Args:
        autoencoder, uir: as in :class:`RARPipeline`.
        lqa: an assessor with a pixel path (``vision_encoder``); it is always asked on pixels.
        conditioner: the text encoders (texts → :class:`Condition`): SD3.5's, or SD1.5's CLIP-L.
        config: loop settings.
        cache_text: let the conditioner reuse embeddings of texts it has seen (False: encode every time).
    """

    def __init__(
        self,
        autoencoder: LatentAutoencoder,
        uir: UIRModel,
        lqa: DepictQA,
        conditioner: SD3TextConditioner,
        config: LoopConfig | None = None,
        cache_text: bool = False,
    ) -> None:
        super().__init__()
        if getattr(lqa, "vision_encoder", None) is None:
            raise ValueError("the naive pipeline assesses pixels: the LQA needs its pixel path (vision_encoder)")
        self.autoencoder = autoencoder
        self.uir = uir
        self.lqa = lqa
        self.conditioner = conditioner
        self.config = config or LoopConfig()
        self.cache_text = cache_text
        realign(self)
        self.eval()

    @classmethod
    def from_rar(cls, pipe: RARPipeline, conditioner: SD3TextConditioner, **kwargs) -> NaivePipeline:
        """Share a :class:`RARPipeline`'s autoencoder, UIR, LQA and loop settings."""
        kwargs.setdefault("config", pipe.config)
        return cls(pipe.autoencoder, pipe.uir, pipe.lqa, conditioner, **kwargs)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
        conditioner: SD3TextConditioner | None = None, cache_text: bool = False, **loop_settings,
    ) -> NaivePipeline:
        """Load a RAR model folder; the text encoders come from its ``conditioner/`` or the argument."""
        parts, config = text_pipeline_parts(path, device, dtype, conditioner)
        return cls(parts["autoencoder"], parts["uir"], parts["lqa"], parts["conditioner"],
                   config.replace(**loop_settings), cache_text=cache_text)

    def wiring(self, clock: StageClock) -> PixelWiring:
        return PixelWiring(self, clock)


class PixelWiring:
    """The naive stages on images (see :class:`rar.baselines.loop.Wiring`)."""

    def __init__(self, pipe: NaivePipeline, clock: StageClock) -> None:
        self.pipe, self.clock, self.config = pipe, clock, pipe.config

    def condition(self, x: torch.Tensor, round_index: int, step: int) -> tuple[Condition, list[str]]:
        question = identification_question(self.config.prompt_pool, self.config.seed, round_index, step)
        texts = self.pipe.lqa.assess(x, space="pixel", question=question).text
        with self.clock.section("text_encode"):
            if not self.pipe.cache_text:
                self.pipe.conditioner.clear_cache()
            cond = self.pipe.conditioner(texts).to(x.device)
        return cond, texts

    def restore(self, x: torch.Tensor, cond: Condition, round_index: int,
                noise: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ae = self.pipe.autoencoder
        with self.clock.section("encode"):
            z = ae.encode(x)
        hook = None
        if self.config.assess_every is not None:
            def hook(x_t: torch.Tensor, t: float, step: int) -> Condition:
                with self.clock.section("assess"):
                    with self.clock.section("decode"):
                        image = ae.decode(x_t, size=x.shape[-2:]).clamp(0, 1)
                    return self.condition(image, round_index, step)[0]
        start = noise(z) if self.pipe.uir.concat_lq else None
        z_new = restore_round(self.pipe.uir, z, cond, self.config.steps_per_round, self.config.method, start,
                              hook, self.config.assess_every)
        with self.clock.section("decode"):
            return ae.decode(z_new, size=x.shape[-2:]).clamp(0, 1)

    def compare(self, new: torch.Tensor, old: torch.Tensor, round_index: int) -> torch.Tensor:
        question = comparison_question(self.config.prompt_pool, self.config.seed, round_index)
        return self.pipe.lqa.p_better(new, old, space="pixel", question=question).p_better


def text_pipeline_parts(path: str | Path, device: str | torch.device | None, dtype: str | torch.dtype | None,
                        conditioner: nn.Module | None) -> tuple[dict[str, nn.Module], LoopConfig]:
    """A model folder's parts for a pipeline that conditions through text encoders (its
    ``text_adapter``, if any, is not loaded): the encoders are the folder's ``conditioner/`` or
    ``conditioner``; a folder with neither is an error saying how to export one."""
    skip = ("text_adapter", "conditioner") if conditioner is not None else ("text_adapter",)
    folder = read_model_folder(path, parse_dtype(dtype), skip=skip)
    parts = dict(folder.components)
    if conditioner is not None:
        parts["conditioner"] = conditioner
    if "conditioner" not in parts:
        raise ValueError(f"{path} holds no text encoders (conditioner); pass conditioner=... or export the "
                         "folder with them (scripts/export_pipeline.py include_conditioner=true)")
    if device is not None:
        parts = {name: m.to(device) for name, m in parts.items()}
    return parts, folder.config

