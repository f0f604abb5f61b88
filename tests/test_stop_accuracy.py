"""The stop rule judged on the model's own rounds: hand-counted metrics, and the rounds themselves."""

from __future__ import annotations

import math

import pytest
import torch

from rar.eval.stop_accuracy import auc, stop_accuracy
from rar.pipeline import LoopConfig
from rar.pipeline.round_audit import own_rounds
from rar.testing import build_tiny_rar_pipeline


def test_hand_count():
    # image 1: round 1 helps (accepted), round 2 hurts (accepted: wrong), round 3 helps (rejected: wrong)
    # image 2: round 1 hurts (rejected: right), round 2 hurts (rejected: right), round 3 helps (accepted: right)
    scores = [torch.tensor([0.50, 0.60, 0.55, 0.58]), torch.tensor([0.70, 0.65, 0.60, 0.62])]
    p = [torch.tensor([0.9, 0.6, 0.4]), torch.tensor([0.2, 0.3, 0.7])]
    got = stop_accuracy(scores, p, threshold=0.5)
    assert got.accuracy == pytest.approx(4 / 6) and got.first_round_accuracy == 1.0
    assert got.helped == pytest.approx(3 / 6) and (got.rounds, got.images) == (6, 2)
    # the rule keeps image 1 through rounds 1-2 (stops at 3): 0.55; image 2 stops at round 1: 0.70
    assert got.policy == pytest.approx((0.55 + 0.70) / 2)
    # a perfect rule: image 1 stops before round 2 (0.60), image 2 before round 1 (0.70)
    assert got.oracle == pytest.approx((0.60 + 0.70) / 2) and got.input == pytest.approx(0.60)
    # p of helping rounds {0.9, 0.4, 0.7} vs harmful {0.6, 0.2, 0.3}: 8 of 9 pairs ordered right (not 0.4 < 0.6)
    assert got.auc == pytest.approx(8 / 9)
    # round 1 held to its own 0.95: image 1 now rejects round 1 (0.50), image 2 as before (0.70)
    strict_first = stop_accuracy(scores, p, threshold=0.5, first_threshold=0.95)
    assert strict_first.policy == pytest.approx((0.50 + 0.70) / 2) and strict_first.first_round_accuracy == 0.5
    assert strict_first.accuracy == pytest.approx(3 / 6) and strict_first.auc == got.auc  # AUC ignores thresholds
    assert math.isnan(auc(torch.tensor([0.1, 0.2]), torch.tensor([True, True])))
    with pytest.raises(ValueError, match="one more entry"):
        stop_accuracy([torch.zeros(3)], [torch.zeros(3)])


def test_own_rounds_keep_every_round_and_ask_the_comparison(tiny_dir):
    pipe = build_tiny_rar_pipeline(tiny_dir / "depictqa", LoopConfig(max_rounds=1, steps_per_round=1),
                                   uir_layers=1, max_new_tokens=3)
    lq = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    audits = own_rounds(pipe, lq, rounds=3)
    assert pipe.config.max_rounds == 1  # the pipeline's own settings are restored
    for i, audit in enumerate(audits):
        assert audit.images.shape == (4, 3, 16, 20) and audit.p_better.shape == (3,) and len(audit.texts) == 3
        torch.testing.assert_close(audit.images[0], lq[i], atol=1e-6, rtol=0)  # space-to-depth: lossless
        assert ((audit.p_better >= 0) & (audit.p_better <= 1)).all()
    fixed = pipe.with_config(max_rounds=3, stop="fixed")(lq[:1], return_latents=True)
    torch.testing.assert_close(audits[0].images[3], pipe.state_image(fixed.trajectories[0].rounds[2].latent, (16, 20),
                                                                    fixed.detail[0]))
