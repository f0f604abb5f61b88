"""Assessor accuracy table (Tables S.1/S.2): a scripted assessor on a hand-made benchmark equals a hand count."""

from __future__ import annotations

import math

import pytest
import torch

from rar.core.assessor import Assessor
from rar.data.benchmark_sets import build_composite_set
from rar.eval.lqa_accuracy import CATEGORY_OF_PHRASE, accuracy_markdown, categories, evaluate_assessor, score_identification
from rar.pipeline.assessor import lqa_assessor, lqa_phrases
from rar.testing import save_tiny_rar_model
from rar.utils.image_io import load_image, save_image


def _key(x: torch.Tensor) -> bytes:
    return x.detach().cpu().float().numpy().tobytes()


@pytest.fixture(scope="module")
def hand_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("acc")
    g = torch.Generator().manual_seed(0)
    for name in ("a", "b"):
        save_image(torch.rand(3, 32, 32, generator=g), root / "clean" / f"{name}.png")
    return build_composite_set(root / "clean", root / "set", groups={"A": [["noise"], ["haze", "jpeg"]]})


# What the scripted assessor answers, per (image name, combination); "clean" = the reference.
ANSWERS = {
    ("a", "noise"): "Noise", ("b", "noise"): "Noise, haze",
    ("a", "haze+jpeg compression artifact"): "Haze",
    ("b", "haze+jpeg compression artifact"): "Jpeg compression artifact and haze",
    ("a", "clean"): "None", ("b", "clean"): "Motion blur",
}


def test_scripted_assessor_equals_hand_count(hand_set):
    answer_of, is_reference, wrong_pair = {}, {}, set()
    for item in hand_set.items:
        stem = item.name.split(".")[0]
        lq, hq = load_image(item.lq), load_image(item.hq)
        answer_of[_key(lq)] = ANSWERS[(stem, item.combination)]
        answer_of[_key(hq)] = ANSWERS[(stem, "clean")]
        is_reference[_key(hq)] = True
        if (stem, item.combination) == ("b", "noise"):
            wrong_pair.add(_key(lq))  # the comparator gets this pair wrong in both orders

    def identify(x):
        return lqa_phrases([answer_of[_key(x[0])]])

    def compare(a, b):
        out = []
        for x, y in zip(a, b, strict=True):
            right = is_reference.get(_key(x), False)
            if _key(y) in wrong_pair or _key(x) in wrong_pair:
                right = not right
            out.append(0.9 if right else 0.1)
        return torch.tensor(out)

    acc = evaluate_assessor(Assessor("scripted", identify, compare), hand_set)
    by = {s.name: s for s in acc.per_category}
    # noise: predicted in a/noise, b/noise; true in both -> P 1, R 1
    assert (by["noise"].precision, by["noise"].recall, by["noise"].f1, by["noise"].support) == (1, 1, 1, 2)
    # haze: predicted 3 times (b/noise wrongly), true twice, 2 hits -> P 2/3, R 1, F1 0.8
    assert by["haze"].precision == pytest.approx(2 / 3) and by["haze"].recall == 1 and by["haze"].f1 == pytest.approx(0.8)
    # jpeg: predicted once, true twice -> P 1, R 0.5, F1 2/3
    assert (by["jpeg"].precision, by["jpeg"].recall) == (1, 0.5) and by["jpeg"].f1 == pytest.approx(2 / 3)
    # blur: only the false "Motion blur" on clean b -> P 0, no support, not in the macro mean
    assert by["blur"].precision == 0 and math.isnan(by["blur"].recall) and by["blur"].support == 0
    assert acc.macro_f1 == pytest.approx((1 + 0.8 + 2 / 3) / 3)
    assert acc.exact_match == pytest.approx(3 / 6)  # a/noise, b/haze+jpeg, clean a
    assert (acc.n_images, acc.n_pairs) == (6, 8)
    assert acc.comparison == pytest.approx(6 / 8)
    table = accuracy_markdown([acc])
    assert "| scripted | 1.00/1.00/1.00 | 0.00/–/0.00 |" in table


def test_categories_and_scores_edge_cases():
    assert categories(["Motion blur", "defocus blur", "none"]) == frozenset({"blur"})
    assert categories(["underexposure", "raindrop"]) == frozenset({"dark", "rain"})
    assert categories(["sparkles"]) == frozenset({"?sparkles"})  # unknown: fails the exact match
    scores, macro, exact = score_identification([frozenset({"?sparkles"})], [frozenset()])
    assert scores == [] and math.isnan(macro) and exact == 0
    with pytest.raises(ValueError, match="as many"):
        score_identification([frozenset()], [])


def test_unlabelled_set_is_refused(hand_set, tmp_path):
    from dataclasses import replace

    bare = replace(hand_set, items=tuple(replace(i, degradations=()) for i in hand_set.items))
    with pytest.raises(ValueError, match="no item records its degradations"):
        evaluate_assessor(Assessor("x", lambda x: [["none"]]), bare)


def test_model_folder_lqa_rows_run(hand_set, tmp_path):
    folder = save_tiny_rar_model(tmp_path / "rar")
    rows = [evaluate_assessor(lqa_assessor(folder, space), hand_set) for space in ("latent", "pixel")]
    for row in rows:
        assert row.n_images == 6 and row.n_pairs == 8 and 0 <= row.comparison <= 1


def test_clip_row_identifies_only(hand_set, tmp_path):
    from test_clip_iqa import save_tiny_clip

    from rar.baselines.clip_iqa import SA_CLIP_LABELS, clip_assessor

    row = evaluate_assessor(clip_assessor(save_tiny_clip(tmp_path / "clip")), hand_set)
    assert row.comparison is None and row.n_pairs == 0 and row.n_images == 6
    assert not row.unknown_phrases  # every SA-CLIP label maps to a category or to "no degradation"
    assert {label for label in SA_CLIP_LABELS if label != "no degradation"} <= set(CATEGORY_OF_PHRASE)
