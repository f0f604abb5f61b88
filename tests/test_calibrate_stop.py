"""The stop threshold chosen on the model's own rounds: the choice by hand, and the script on a tiny folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rar.eval.calibration import choose_threshold
from rar.pipeline import LoopConfig

REPO = Path(__file__).resolve().parents[1]


def test_choose_threshold_by_hand():
    # image 1: round 1 helps (p 0.95), round 2 hurts (p 0.85); image 2: round 1 hurts (p 0.8)
    scores = [torch.tensor([0.5, 0.6, 0.4]), torch.tensor([0.7, 0.6, 0.65])]
    p = [torch.tensor([0.95, 0.85]), torch.tensor([0.8, 0.9])]
    got = choose_threshold(scores, p, [0.5, 0.9, 0.99], standard_errors=0.0)  # the best mean
    # 0.5 accepts everything: (0.4 + 0.65) / 2; 0.9 keeps round 1 of image 1 only: (0.6 + 0.7) / 2; 0.99 none
    assert got.policy == pytest.approx({(None, 0.5): 0.525, (None, 0.9): 0.65, (None, 0.99): 0.6})
    assert (got.threshold, got.first_threshold) == (0.9, None) and got.images == 2 and got.oracle == pytest.approx(0.65)
    # round 1 on its own: (0.85, 0.9) keeps round 1 of image 1 and rejects image 2's (p 0.8), as does (0.9, 0.9);
    # the tie goes to the pair nearer 0.5; (0.0, 0.99) accepts both first rounds: (0.6 + 0.6) / 2
    pairs = choose_threshold(scores, p, [0.5, 0.9, 0.99], first_candidates=[0.0, 0.85, 0.9], standard_errors=0.0)
    assert pairs.policy[(0.0, 0.99)] == pytest.approx(0.6) and pairs.policy[(0.85, 0.9)] == pytest.approx(0.65)
    assert (pairs.first_threshold, pairs.threshold) == (0.85, 0.9)
    # a tie goes to the threshold nearest the paper's 0.5
    assert choose_threshold(scores, p, [0.96, 0.99, 0.0, 0.3], standard_errors=0.0).threshold == 0.96
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        choose_threshold(scores, p, [1.5])
    with pytest.raises(ValueError, match="standard_errors"):
        choose_threshold(scores, p, [0.5], standard_errors=-1.0)


def test_choose_threshold_prefers_one_round_within_the_noise():
    # round 1 helps images 1-3 a little and ruins image 4; round 2 helps only image 1
    scores = [torch.tensor([0.5, 0.6, 0.62]), torch.tensor([0.5, 0.6, 0.55]),
              torch.tensor([0.5, 0.55, 0.5]), torch.tensor([0.5, 0.2, 0.2])]
    p = [torch.tensor([0.9, 0.95]), torch.tensor([0.3, 0.5]), torch.tensor([0.9, 0.5]), torch.tensor([0.2, 0.5])]
    # (0.8, 0.99) keeps 0.6, 0.5, 0.55, 0.5: 0.5375, the best mean; (0.0, 0.99) keeps round 1 everywhere: 0.4875.
    # Per image the best is 0, -0.1, 0, +0.3 ahead: mean 0.05, standard error 0.1732 / 2 = 0.0866
    got = choose_threshold(scores, p, [0.99], first_candidates=[0.0, 0.8])
    assert got.best == (0.8, 0.99) and got.policy[got.best] == pytest.approx(0.5375)
    assert (got.first_threshold, got.threshold) == (0.0, 0.99) and got.one_round == 1.0
    assert got.tolerance == pytest.approx(0.0866, abs=1e-4)
    # half a standard error (0.0433) no longer covers the 0.05 gap, and none keeps the best mean
    for standard_errors in (0.5, 0.0):
        strict = choose_threshold(scores, p, [0.99], first_candidates=[0.0, 0.8], standard_errors=standard_errors)
        assert (strict.first_threshold, strict.threshold) == (0.8, 0.99) and strict.one_round == 0.5


def test_calibrate_stop_writes_the_threshold_into_the_folder(tmp_path):
    from rar.data.dead_leaves import write_dead_leaves
    from rar.testing import save_tiny_rar_model

    model = save_tiny_rar_model(tmp_path / "model", LoopConfig(max_rounds=1, steps_per_round=1))
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    command = [sys.executable, str(REPO / "scripts" / "calibrate_stop.py"), f"model={model}", "rounds=2",
               "data.length=4", "data.crop_size=32", "batch_size=2", "thresholds=[0.0,1.0]",
               f"data.source={tmp_path}/leaves", f"hydra.run.dir={tmp_path}/run"]
    # no calibration images yet: a clear error that says how to make them, and the folder untouched
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0 and "prepare_data.py task=dead_leaves" in done.stderr
    assert not (model / "stop_calibration.json").exists()
    write_dead_leaves(tmp_path / "leaves", count=2, size=64)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((model / "stop_calibration.json").read_text())
    # every pair of a round-1 threshold (default candidates) and a later one
    firsts = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert report["images"] == 4 and {(r["first_threshold"], r["threshold"]) for r in report["policy"]} == {
        (f, t) for f in firsts for t in (0.0, 1.0)}
    best = max(r["ssim"] for r in report["policy"])
    assert next(r["ssim"] for r in report["policy"] if [r["first_threshold"], r["threshold"]] == report["best"]) == best
    chosen = next(r for r in report["policy"]
                  if (r["first_threshold"], r["threshold"]) == (report["first_threshold"], report["threshold"]))
    assert best - report["tolerance"] - 1e-9 <= chosen["ssim"] <= best  # within a standard error of the best
    # every crop's scores (input, then each round) and p_better, for a post-hoc look at other rules
    assert len(report["crops"]) == 4 and all(len(c["ssim"]) == 3 and len(c["p_better"]) == 2 for c in report["crops"])
    config = LoopConfig.load(model / "rar_config.json")
    assert (config.threshold, config.first_threshold) == (report["threshold"], report["first_threshold"])
    assert config.max_rounds == 1  # the other settings are kept
    # a report-only run leaves the folder's thresholds and their record as they were
    before = {name: (model / name).read_bytes() for name in ("stop_calibration.json", "rar_config.json")}
    command[-1] = f"hydra.run.dir={tmp_path}/report"
    done = subprocess.run([*command, "write=false", "thresholds=[0.5]", "first_thresholds=null"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {name: (model / name).read_bytes() for name in before} == before
    assert json.loads((tmp_path / "report" / "stop_calibration.json").read_text())["threshold"] == 0.5


def test_stop_accuracy_script_judges_the_models_own_rule(tmp_path):
    from rar.testing import save_tiny_rar_model

    model = save_tiny_rar_model(tmp_path / "model", LoopConfig(max_rounds=1, steps_per_round=1, threshold=0.9,
                                                                first_threshold=0.0))
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    command = [sys.executable, str(REPO / "scripts" / "stop_accuracy.py"), "benchmark=samples_groupB", f"model={model}",
               "rounds=2", f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "stop_accuracy.json").read_text())
    assert (report["first_threshold"], report["threshold"]) == (0.0, 0.9)
    # round 1 always accepted (threshold 0): the rule is right on round 1 exactly where round 1 helped
    helped = [row["ssim"][1] > row["ssim"][0] for row in report["images"]]
    assert len(helped) == 12 and report["summary"]["first_round_accuracy"] == pytest.approx(sum(helped) / 12)
