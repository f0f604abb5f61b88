"""Assessor accuracy on a labelled benchmark (paper Tables S.1 / S.2).

Every item of a benchmark set whose manifest records its degradations is one identification
case (the degraded image; truth: its degradations), each distinct clean reference one more (truth:
nothing), and each (reference, degraded) pair one comparison case, asked in both orders
(truth: the reference is better). An *assessor* answers with a set of degradation categories
per image and, when it can, ``p_better`` per pair.

Categories are coarse so that every assessor is scored on the same classes: the benchmark's
``motion_blur`` and ``defocus_blur`` are both ``blur`` (a CLIP classifier over AutoDIR's labels
has one "blur" class), ``dark`` is also CLIP's "underexposure", and "raindrop" counts as
``rain``. Assessors (:class:`rar.core.assessor.Assessor`) are built by
:func:`rar.pipeline.assessor.lqa_assessor` (a RAR model folder's LQA, latent or pixel path) and
:func:`rar.baselines.clip_iqa.clip_assessor`. An answer phrase that maps to no category is counted in
:attr:`AssessorAccuracy.unknown_phrases` and makes that image's exact match fail.
A low-resolution LQ (1/4 of its reference) is compared at the reference size (MATLAB bicubic ×4).

Per category: precision, recall and F1 over all identification cases (a clean image counts
towards false positives only); macro F1 is their mean over the categories present in the truth.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from rar.core.assessor import Assessor
from rar.data.benchmark_sets import BenchmarkSet
from rar.degradations import display_name
from rar.eval.metrics import match_reference_size
from rar.utils.image_io import load_image

CATEGORY_OF_DEGRADATION: dict[str, str] = {
    "noise": "noise", "motion_blur": "blur", "defocus_blur": "blur", "rain": "rain", "dark": "dark",
    "haze": "haze", "low_resolution": "low resolution", "jpeg": "jpeg",
}
"""Benchmark degradation key → category."""

CATEGORY_OF_PHRASE: dict[str, str] = {
    **{display_name(key): cat for key, cat in CATEGORY_OF_DEGRADATION.items()},
    # DepictQA-style and AutoDIR (SA-CLIP) wordings
    "blur": "blur", "underexposure": "dark", "darken": "dark", "low light": "dark", "raindrop": "rain",
    "jpeg": "jpeg", "compression": "jpeg",
    "jpeg compression": "jpeg", "pixelate": "low resolution", "pixelation": "low resolution",
    "insufficient brightness": "dark",
}
"""Answer phrase (lower case) → category; "none" and "no degradation" mean an empty set."""

CLEAN_PHRASES = frozenset({"none", "no degradation", "clean"})


def categories(phrases: Iterable[str]) -> frozenset[str]:
    """Phrases → categories; a phrase that maps to none stays in the set as ``"?<phrase>"`` (it
    fails the exact match and counts as unknown, but belongs to no category's scores)."""
    found = set()
    for phrase in phrases:
        p = phrase.strip().lower()
        if p and p not in CLEAN_PHRASES:
            found.add(CATEGORY_OF_PHRASE.get(p, "?" + p))
    return frozenset(found)


def truth_categories(degradations: Sequence[str]) -> frozenset[str]:
    """Benchmark degradation keys → categories (an unknown key is an error: the manifest is off)."""
    missing = [d for d in degradations if d not in CATEGORY_OF_DEGRADATION]
    if missing:
        raise ValueError(f"no category for degradations {missing}; known: {sorted(CATEGORY_OF_DEGRADATION)}")
    return frozenset(CATEGORY_OF_DEGRADATION[d] for d in degradations)


@dataclass
class CategoryScore:
    """One category: ``precision``, ``recall``, ``f1`` (NaN when undefined) and ``support`` (true cases)."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class AssessorAccuracy:
    """One assessor on one benchmark.

    Attributes:
        per_category: scores in :data:`CATEGORY_ORDER` order (categories absent from both truth
            and answers are left out).
        macro_f1: mean F1 over categories with support.
        exact_match: fraction of identification cases whose category set equals the truth.
        comparison: fraction of correct comparisons (both orders), or None if it cannot compare.
        n_images, n_pairs: identification cases and comparison questions asked.
        unknown_phrases: answer phrases that map to no category, with counts.
    """

    assessor: str
    per_category: list[CategoryScore]
    macro_f1: float
    exact_match: float
    comparison: float | None
    n_images: int
    n_pairs: int
    unknown_phrases: dict[str, int] = field(default_factory=dict)


CATEGORY_ORDER = ("noise", "blur", "rain", "dark", "haze", "low resolution", "jpeg")


def score_identification(predicted: Sequence[frozenset[str]], truth: Sequence[frozenset[str]]
                         ) -> tuple[list[CategoryScore], float, float]:
    """Per-category scores, macro F1 and exact-match rate of predicted vs true category sets."""
    if len(predicted) != len(truth) or not truth:
        raise ValueError(f"need as many predictions as truths (> 0), got {len(predicted)} and {len(truth)}")
    nan = float("nan")
    scores = []
    for cat in CATEGORY_ORDER:
        tp = sum(cat in p and cat in t for p, t in zip(predicted, truth, strict=True))
        n_pred = sum(cat in p for p in predicted)
        n_true = sum(cat in t for t in truth)
        if n_pred == 0 and n_true == 0:
            continue
        precision = tp / n_pred if n_pred else nan
        recall = tp / n_true if n_true else nan
        f1 = 2 * tp / (n_pred + n_true)
        scores.append(CategoryScore(cat, precision, recall, f1, n_true))
    supported = [s.f1 for s in scores if s.support]
    macro = sum(supported) / len(supported) if supported else nan
    exact = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    return scores, macro, exact


@torch.no_grad()
def evaluate_assessor(assessor: Assessor, benchmark_set: BenchmarkSet, include_clean: bool = True,
                      device: torch.device | str = "cpu", upscale_inputs: bool = False) -> AssessorAccuracy:
    """Score ``assessor`` on every item of ``benchmark_set`` (see the module docstring).

    Images go one at a time (benchmark images differ in size); a low-resolution LQ (exactly 1/4
    of its reference) is brought to the reference size for the comparison, as the harness does,
    and for the identification too with ``upscale_inputs`` (the eval option of that name).
    """
    items = [item for item in benchmark_set.items if item.degradations]
    if not items:
        raise ValueError(f"{benchmark_set.root}: no item records its degradations; nothing to score")
    device = torch.device(device)
    predicted, truth, clean_done = [], [], set()
    hits = asked = 0
    for item in items:
        lq, hq = load_image(item.lq), load_image(item.hq)
        lq_full = match_reference_size(lq, tuple(hq.shape[-2:]), str(item.lq))
        cases = [(lq_full if upscale_inputs else lq, truth_categories(item.degradations))]
        if include_clean and item.hq not in clean_done:
            clean_done.add(item.hq)
            cases.append((hq, frozenset()))
        for image, true in cases:
            predicted.append(categories(assessor.identify(image[None].to(device))[0]))
            truth.append(true)
        if assessor.compare is not None:
            p = assessor.compare(torch.stack([hq, lq_full]).to(device), torch.stack([lq_full, hq]).to(device))
            hits += int(p[0] > 0.5) + int(p[1] < 0.5)
            asked += 2
    scores, macro, exact = score_identification(predicted, truth)
    unknown = Counter(c[1:] for cats in predicted for c in cats if c.startswith("?"))
    return AssessorAccuracy(assessor.name, scores, macro, exact, hits / asked if asked else None,
                            len(truth), asked, dict(unknown))


def accuracy_markdown(rows: Sequence[AssessorAccuracy]) -> str:
    """One table: per category ``precision / recall / F1``, then macro F1, exact match, comparison."""
    cats = [c for c in CATEGORY_ORDER if any(s.name == c for r in rows for s in r.per_category)]
    head = ["assessor", *(f"{c} P/R/F1" for c in cats), "macro F1", "exact", "comparison", "images", "pairs"]

    def num(v: float | None) -> str:
        return "–" if v is None or math.isnan(v) else f"{v:.2f}"

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        by = {s.name: s for s in r.per_category}
        cells = ["/".join(num(v) for v in (by[c].precision, by[c].recall, by[c].f1)) if c in by else "–" for c in cats]
        lines.append("| " + " | ".join([r.assessor, *cells, num(r.macro_f1), num(r.exact_match), num(r.comparison),
                                        str(r.n_images), str(r.n_pairs)]) + " |")
    return "\n".join(lines)
