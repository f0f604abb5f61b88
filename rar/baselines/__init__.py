"""Baselines of the paper's ablations on the same UIR: the naive pixel → text → text-encoder loop
(:mod:`rar.baselines.naive`, paper Eq. 1–2) and the CLIP-IQA classifier loop
(:mod:`rar.baselines.clip_iqa`, Table 4); their shared image-state loop is :mod:`rar.baselines.loop`.
The "Text, Latent" row (the latent LQA's text through the text encoders, in RAR's latent loop) is
:mod:`rar.baselines.text_latent`."""

from rar.baselines.clip_iqa import ClipIQAPipeline
from rar.baselines.naive import NaivePipeline
from rar.baselines.text_latent import TextLatentPipeline

__all__ = ["ClipIQAPipeline", "NaivePipeline", "TextLatentPipeline"]
