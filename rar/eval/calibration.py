"""The stop rule's thresholds chosen on the model's own rounds (``scripts/calibrate_stop.py``).

The comparator is trained on synthetic degradations of clean crops; the restorer's outputs carry
artefacts it never saw, so its ``p_better`` on them can sit far from 0.5 (a well-trained tiny LQA
calls almost every round better). Round 1 compares a restoration with the degraded input itself,
the kind of pair the LQA learnt on; later rounds compare two restorations, which it never saw, so
the two decisions may need different thresholds. :func:`choose_threshold` picks, among candidate
thresholds (and, when ``first_candidates`` are given, candidate round-1 thresholds: every pair is
tried), a rule ("accept rounds until the first rejection", :mod:`rar.eval.stop_accuracy`) scored on
images *outside* the benchmark.

Which rule: not simply the best mean. On the few hundred crops a calibration affords, the rules' means
lie within a few thousandths of each other, less than their spread from crop to crop, and the argmax
is noise that need not hold on other images (docs/experiments.md). So, like the one-standard-error
rule of cross-validation, every pair whose mean is within ``standard_errors`` standard errors of the
best (the standard error of the per-crop difference to the best) counts as equally good, and of
those the one that keeps exactly one round on the most crops is chosen: one round from the degraded
input is what the restorer was trained for, and the comparator has to earn every departure from it.
Remaining ties go to the pair nearest the paper's 0.5. ``standard_errors=0`` picks the best mean.
The standard error is only as good as the number of crops on which two rules differ: when a rule
departs from one round on a handful of crops, a few lucky ones clear it, so calibrate on enough crops
(``data.length`` of ``configs/calibrate_stop.yaml``; docs/experiments.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rar.eval.stop_accuracy import stop_accuracy, stop_round

PAPER_THRESHOLD = 0.5


@dataclass
class ThresholdChoice:
    """The chosen ``threshold`` (and round 1's ``first_threshold``, None when not chosen apart) and,
    per candidate pair ``(first_threshold, threshold)``, the rule's mean score (``policy``); ``input``
    and ``oracle`` as in :class:`rar.eval.stop_accuracy.StopAccuracy`; ``images`` scored; ``best``:
    the pair with the highest mean; ``tolerance``: how far below it a pair still counted as equal
    (module docstring); ``one_round``: the chosen rule's share of images kept at exactly round 1."""

    threshold: float
    first_threshold: float | None
    policy: dict[tuple[float | None, float], float]
    input: float
    oracle: float
    images: int
    best: tuple[float | None, float]
    tolerance: float
    one_round: float


def choose_threshold(scores: Sequence[torch.Tensor], p_better: Sequence[torch.Tensor],
                     candidates: Sequence[float], first_candidates: Sequence[float] | None = None,
                     standard_errors: float = 1.0) -> ThresholdChoice:
    """``scores[i] [R + 1]`` and ``p_better[i] [R]`` as :func:`rar.eval.stop_accuracy.stop_accuracy`
    takes them; ``first_candidates``: round 1's own candidates (None: one threshold for every round);
    ``standard_errors``: the tolerance of the choice (module docstring)."""
    if not candidates or (first_candidates is not None and not first_candidates):
        raise ValueError("choose_threshold needs at least one candidate threshold (and round-1 threshold)")
    bad = [t for t in [*candidates, *(first_candidates or [])] if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"thresholds must lie in [0, 1], got {bad}")
    if standard_errors < 0:
        raise ValueError(f"standard_errors must be >= 0, got {standard_errors}")
    firsts = [None] if first_candidates is None else [float(f) for f in first_candidates]
    pairs = [(f, float(t)) for f in firsts for t in candidates]
    whole = stop_accuracy(scores, p_better)  # checks the shapes; input and oracle do not depend on the rule
    rows = [(torch.as_tensor(s, dtype=torch.float64), torch.as_tensor(p, dtype=torch.float64))
            for s, p in zip(scores, p_better, strict=True)]
    stops = {pair: torch.tensor([stop_round(p, pair[1], pair[0]) for _, p in rows]) for pair in pairs}
    kept = {pair: torch.stack([s[k] for (s, _), k in zip(rows, stops[pair], strict=True)]) for pair in pairs}
    policy = {pair: float(kept[pair].mean()) for pair in pairs}

    def distance(pair: tuple[float | None, float]) -> float:  # from the paper's rule
        first, later = pair
        return abs(later - PAPER_THRESHOLD) + (0.0 if first is None else abs(first - PAPER_THRESHOLD))

    best = max(pairs, key=lambda pair: (round(policy[pair], 12), -distance(pair)))
    n = len(rows)
    gaps = {pair: kept[best] - kept[pair] for pair in pairs}
    tolerance = {pair: standard_errors * float(gap.std()) / n**0.5 if n > 1 else 0.0 for pair, gap in gaps.items()}
    equal = [pair for pair in pairs if float(gaps[pair].mean()) <= tolerance[pair] + 1e-12]
    one_round = {pair: float((stops[pair] == 1).double().mean()) for pair in pairs}
    chosen = max(equal, key=lambda pair: (one_round[pair], round(policy[pair], 12), -distance(pair)))
    return ThresholdChoice(chosen[1], chosen[0], policy, whole.input, whole.oracle, whole.images, best,
                           tolerance[chosen], one_round[chosen])
