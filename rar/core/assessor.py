"""What the assessor-accuracy table (:mod:`rar.eval.lqa_accuracy`) scores: any model that names
the degradations of an image and, maybe, compares two images. Built in ``rar.pipeline`` (the LQA)
and ``rar.baselines`` (CLIP), scored in ``rar.eval``, so the type sits below all three."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Assessor:
    """What is scored: ``identify(images [B,3,H,W] in [0,1]) -> one phrase list per image`` and,
    if the assessor can compare, ``compare(a, b) -> p_better [B]`` (A better than B)."""

    name: str
    identify: Callable[[torch.Tensor], list[list[str]]]
    compare: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
