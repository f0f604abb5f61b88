"""Baselines of the paper's ablations on the same UIR: the naive pixel → text → text-encoder loop
(:mod:`rar.baselines.naive`, paper Eq. 1–2) and the CLIP-IQA classifier loop
(:mod:`rar.baselines.clip_iqa`, Table 4); their shared image-state loop is :mod:`rar.baselines.loop`."""

from rar.baselines.clip_iqa import ClipIQAPipeline
from rar.baselines.naive import NaivePipeline

__all__ = ["ClipIQAPipeline", "NaivePipeline"]
