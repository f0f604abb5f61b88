"""The stop rule's thresholds chosen on the model's own rounds (``scripts/calibrate_stop.py``).

The comparator is trained on synthetic degradations of clean crops; the restorer's outputs carry
artefacts it never saw, so its ``p_better`` on them can sit far from 0.5 (a well-trained tiny LQA
calls almost every round better). Round 1 compares a restoration with the degraded input itself,
the kind of pair the LQA learnt on; later rounds compare two restorations, which it never saw, so
the two decisions may need different thresholds. :func:`choose_threshold` picks, among candidate
thresholds (and, when ``first_candidates`` are given, candidate round-1 thresholds: every pair is
tried), the rule ("accept rounds until the first rejection", :mod:`rar.eval.stop_accuracy`) with
the highest mean score on images *outside* the benchmark; ties go to the pair nearest the paper's
0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rar.eval.stop_accuracy import stop_accuracy

PAPER_THRESHOLD = 0.5


@dataclass
class ThresholdChoice:
    """The chosen ``threshold`` (and round 1's ``first_threshold``, None when not chosen apart) and,
    per candidate pair ``(first_threshold, threshold)``, the rule's mean score (``policy``); ``input``
    and ``oracle`` as in :class:`rar.eval.stop_accuracy.StopAccuracy`; ``images`` scored."""

    threshold: float
    first_threshold: float | None
    policy: dict[tuple[float | None, float], float]
    input: float
    oracle: float
    images: int


def choose_threshold(scores: Sequence[torch.Tensor], p_better: Sequence[torch.Tensor],
                     candidates: Sequence[float], first_candidates: Sequence[float] | None = None) -> ThresholdChoice:
    """``scores[i] [R + 1]`` and ``p_better[i] [R]`` as :func:`rar.eval.stop_accuracy.stop_accuracy`
    takes them; ``first_candidates``: round 1's own candidates (None: one threshold for every round)."""
    if not candidates or (first_candidates is not None and not first_candidates):
        raise ValueError("choose_threshold needs at least one candidate threshold (and round-1 threshold)")
    bad = [t for t in [*candidates, *(first_candidates or [])] if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"thresholds must lie in [0, 1], got {bad}")
    firsts = [None] if first_candidates is None else [float(f) for f in first_candidates]
    results = {(f, float(t)): stop_accuracy(scores, p_better, float(t), f) for f in firsts for t in candidates}
    policy = {pair: r.policy for pair, r in results.items()}

    def distance(pair: tuple[float | None, float]) -> float:  # from the paper's rule
        first, later = pair
        return abs(later - PAPER_THRESHOLD) + (0.0 if first is None else abs(first - PAPER_THRESHOLD))

    best = max(policy, key=lambda pair: (round(policy[pair], 12), -distance(pair)))
    chosen = results[best]
    return ThresholdChoice(best[1], best[0], policy, chosen.input, chosen.oracle, chosen.images)
