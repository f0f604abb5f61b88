"""Identification and comparison accuracy of an LQA on single-phrase records.

Identification: the greedy answer of :meth:`DepictQA.assess` against the record's answer, as
*sets* of degradation phrases (``"Noise, haze"`` == ``"haze and noise"``; ``"None"`` is the
empty set). Comparison: ``p_better > 0.5`` against which image is better.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rar.lqa.datasets import LQASample
from rar.lqa.model import DepictQA, ImageSpace
from rar.lqa.prompts import COMPARE_TASK, IDENTIFY_TASK, strip_terminator


def phrase_set(answer: str) -> frozenset[str]:
    """``"Noise, haze"`` → ``{"noise", "haze"}``; ``"None"`` → empty."""
    parts = [p.strip().strip(".").lower() for p in re.split(r",| and ", answer)]
    return frozenset(p for p in parts if p and p != "none")


def phrase_f1(predicted: frozenset[str], truth: frozenset[str]) -> float:
    """F1 of two phrase sets; 1.0 when both are empty (a clean image answered "None")."""
    if not predicted and not truth:
        return 1.0
    hits = len(predicted & truth)
    return 2 * hits / (len(predicted) + len(truth))


@dataclass
class LQAAccuracy:
    """``identification``: fraction of exact phrase-set matches; ``identification_f1``: mean
    per-image F1 of the phrase sets; ``comparison``: fraction of correct preferences (NaN where a
    kind is absent); ``n_identify``/``n_compare``: counts."""

    identification: float
    identification_f1: float
    comparison: float
    n_identify: int
    n_compare: int

    def as_dict(self) -> dict[str, float]:
        return {"identification_acc": self.identification, "identification_f1": self.identification_f1,
                "comparison_acc": self.comparison}


@torch.no_grad()
def evaluate_lqa(
    lqa: DepictQA,
    samples: Sequence[LQASample],
    space: ImageSpace,
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 16,
) -> LQAAccuracy:
    """Accuracy over ``samples`` (single-phrase identification / comparison records).

    ``encode`` maps images to latents when ``space == "latent"`` (the autoencoder's ``encode``).
    """
    if space == "latent" and encode is None:
        raise ValueError("evaluate_lqa(space='latent') needs encode (images -> latents)")
    device = next(lqa.parameters()).device
    prep = (lambda x: encode(x.to(device))) if space == "latent" else (lambda x: x.to(device))
    ident = [s for s in samples if s.layout.task_type == IDENTIFY_TASK and s.layout.answers]
    comp = [s for s in samples if s.layout.task_type == COMPARE_TASK and s.layout.answers]
    hits_i, f1 = 0, 0.0
    for i in range(0, len(ident), batch_size):
        chunk = ident[i : i + batch_size]
        texts = lqa.assess(prep(torch.stack([s.images[0] for s in chunk])), space=space).text
        for text, sample in zip(texts, chunk, strict=True):
            predicted, truth = phrase_set(text), phrase_set(strip_terminator(sample.layout.answers[0]))
            hits_i += predicted == truth
            f1 += phrase_f1(predicted, truth)
    hits_c = 0
    for i in range(0, len(comp), batch_size):
        chunk = comp[i : i + batch_size]
        a = prep(torch.stack([s.images[0] for s in chunk]))
        b = prep(torch.stack([s.images[1] for s in chunk]))
        p = lqa.p_better(a, b, space=space).p_better.cpu()
        truth = torch.tensor([s.better for s in chunk])
        hits_c += int(((p > 0.5).float() == truth).sum())
    nan = float("nan")
    return LQAAccuracy(hits_i / len(ident) if ident else nan, f1 / len(ident) if ident else nan,
                       hits_c / len(comp) if comp else nan, len(ident), len(comp))
