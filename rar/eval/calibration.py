"""The stop rule's threshold chosen on the model's own rounds (``scripts/calibrate_stop.py``).

The comparator is trained on synthetic degradations of clean crops; the restorer's outputs carry
artefacts it never saw, so its ``p_better`` on them can sit far from 0.5 (a well-trained tiny LQA
calls almost every round better). :func:`choose_threshold` picks, among candidate thresholds, the
one whose rule ("accept rounds until the first ``p_better < t``", :mod:`rar.eval.stop_accuracy`)
gives the highest mean score on images *outside* the benchmark; ties go to the threshold nearest
the paper's 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rar.eval.stop_accuracy import stop_accuracy

PAPER_THRESHOLD = 0.5


@dataclass
class ThresholdChoice:
    """The chosen ``threshold`` and, per candidate, the rule's mean score (``policy``); ``input``
    and ``oracle`` as in :class:`rar.eval.stop_accuracy.StopAccuracy`; ``images`` scored."""

    threshold: float
    policy: dict[float, float]
    input: float
    oracle: float
    images: int


def choose_threshold(scores: Sequence[torch.Tensor], p_better: Sequence[torch.Tensor],
                     candidates: Sequence[float]) -> ThresholdChoice:
    """``scores[i] [R + 1]`` and ``p_better[i] [R]`` as :func:`rar.eval.stop_accuracy.stop_accuracy` takes them."""
    if not candidates:
        raise ValueError("choose_threshold needs at least one candidate threshold")
    bad = [t for t in candidates if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"thresholds must lie in [0, 1], got {bad}")
    results = {float(t): stop_accuracy(scores, p_better, float(t)) for t in candidates}
    policy = {t: r.policy for t, r in results.items()}
    best = max(policy, key=lambda t: (round(policy[t], 12), -abs(t - PAPER_THRESHOLD)))
    chosen = results[best]
    return ThresholdChoice(best, policy, chosen.input, chosen.oracle, chosen.images)
