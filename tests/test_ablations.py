"""Ablations: the eval-time loop ablations (sweep overrides of ``method=rar`` documented in
``docs/ablations.md``) and the training-side ones (``configs/experiment/abl_*.yaml``) compose and set
what they claim, and a tiny ablation sweep runs end to end and merges into one table
(scripts/eval.py -m, scripts/collect.py)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rar.pipeline.config import LoopConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
RAR_LOADER = "rar.pipeline.RARPipeline.from_pretrained"

# documented sweep (docs/ablations.md) -> the loop settings of each of its points (paper Table 6 / S.6, S.3, S.7)
EVAL_SWEEPS: dict[str, list[dict]] = {
    "+method.target.max_rounds=1,2,3,4 +method.target.stop=fixed":
        [{"max_rounds": n, "stop": "fixed"} for n in (1, 2, 3, 4)],
    "+method.target.max_rounds=4 +method.target.stop=compare": [{"max_rounds": 4, "stop": "compare"}],
    "+method.target.prompt_pool=fixed,random": [{"prompt_pool": "fixed"}, {"prompt_pool": "random"}],
    "+method.target.max_rounds=4,16 +method.target.stop=compare,fixed":
        [{"max_rounds": n, "stop": stop} for n in (4, 16) for stop in ("compare", "fixed")],
}

# experiment -> (the stage it selects by default, the stages it applies to)
TRAIN_ABLATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "abl_noisy_flow": ("uir", ("uir", "joint")),
    "abl_pixel_lqa": ("uir", ("cond_align", "uir")),
    "abl_text_condition": ("uir", ("uir",)),
    "abl_sd15": ("uir", ("lqa_align", "lqa_finetune", "cond_align", "uir")),
    "abl_sd15_tiny": ("uir", ("cond_align", "uir")),
    "abl_non_iterative": ("joint", ("joint",)),
}


def _compose(config: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config, overrides=overrides)


def _points(sweep: str) -> list[list[str]]:
    """The override lists of every point of a ``key=a,b key2=c`` sweep (Hydra's basic sweeper order)."""
    points = [[]]
    for item in sweep.split():
        key, values = item.split("=", 1)
        points = [p + [f"{key}={v}"] for p in points for v in values.split(",")]
    return points


def test_every_training_ablation_is_listed_and_every_sweep_documented():
    assert {p.stem for p in (CONFIGS / "experiment").glob("abl_*.yaml")} == set(TRAIN_ABLATIONS)
    docs = (REPO / "docs" / "ablations.md").read_text()
    for sweep in EVAL_SWEEPS:
        assert sweep in docs, f"docs/ablations.md does not give the sweep {sweep!r}"


@pytest.mark.parametrize("sweep", sorted(EVAL_SWEEPS))
def test_eval_sweep_sets_the_loop_settings_it_claims(sweep):
    settings = []
    for overrides in _points(sweep):
        cfg = _compose("eval", ["method=rar", *overrides])
        target = dict(cfg.method.target)
        assert target["_target_"] == RAR_LOADER
        loop = {k: v for k, v in target.items() if k not in ("_target_", "path", "dtype", "fast")}
        LoopConfig().replace(**loop)  # every key is a real loop setting with a valid value
        settings.append(loop)
    assert sorted(settings, key=str) == sorted(EVAL_SWEEPS[sweep], key=str)
    assert _compose("eval", ["method=rar"]).method.target.get("max_rounds") is None  # default: the model's own


@pytest.mark.parametrize("experiment", sorted(TRAIN_ABLATIONS))
def test_training_ablation_composes_with_its_stages(experiment):
    default_stage, stages = TRAIN_ABLATIONS[experiment]
    assert _compose("train", [f"experiment={experiment}", "run_dir=/tmp/unused"]).stage.name == default_stage
    for stage in stages:
        cfg = _compose("train", [f"stage={stage}", f"experiment={experiment}", "run_dir=/tmp/unused"])
        assert cfg.name == experiment and cfg.stage.name == stage
        # the tiny experiment's settings underneath (abl_sd15: sd35_medium's real-scale ones)
        assert cfg.trainer.log_every == (50 if experiment == "abl_sd15" else 25)
        for module in cfg.stage.modules:
            assert cfg[module]._target_, f"{experiment}/{stage}: module group {module} has no _target_"
        if experiment == "abl_noisy_flow":
            assert cfg.uir.concat_lq is True
            assert cfg.stage.target.path._target_ == "rar.uir.flow.NoisyConditionalPath"
            assert "text_adapter" in cfg.stage.modules and (stage == "joint" or cfg.condition == "lqa")
        elif experiment == "abl_pixel_lqa":
            assert cfg.lqa.image_space == "pixel" and "lqa" in cfg.stage.modules
        elif experiment == "abl_text_condition":
            assert cfg.condition == "text" and "conditioner" in cfg.stage.modules
            assert cfg.stage.target.condition._target_ == "rar.conditioning.sources.TextCondition"
        elif experiment.startswith("abl_sd15"):  # the tiny one trains in tests/test_sd15_diffusion.py
            assert cfg.uir._target_ == "rar.uir.diffusion.build_sd15_diffusion"
            assert cfg.conditioner._target_ == "rar.conditioning.clip_text.build_clip_text_conditioner"
            assert cfg.text_adapter.pooled_dim == 0
            if experiment == "abl_sd15":
                assert cfg.uir.config == "sd15" and cfg.text_adapter.joint_dim == 768
                assert cfg.autoencoder._target_ == "rar.uir.autoencoders.build_kl_autoencoder"
                assert cfg.lqa.image_adapter.latent_channels == 4
            # SD1.5 itself predicts epsilon; the from-scratch tiny UNet predicts v (docs/experiments.md)
            assert cfg.uir.schedule.prediction_type == ("epsilon" if experiment == "abl_sd15" else "v_prediction")
            if stage == "uir":
                assert cfg.stage.target.path._target_ == "rar.uir.diffusion.DiffusionPath"
        elif experiment == "abl_non_iterative":
            assert cfg.stage.target.iterative is False


def test_baseline_keeps_the_paper_settings():
    """The ablations change only their own row: the plain stages keep the paper's choices."""
    uir = _compose("train", ["stage=uir", "run_dir=/tmp/unused"])
    assert uir.stage.target.path._target_ == "rar.uir.flow.NoiseFreePath" and uir.uir.concat_lq is False
    assert uir.lqa.image_space == "latent"
    assert _compose("train", ["stage=joint", "run_dir=/tmp/unused"]).stage.target.iterative is True


def test_ablation_sweep_collects_one_row_per_ablation(tmp_path):
    from rar.testing import save_tiny_rar_model

    model = save_tiny_rar_model(tmp_path / "model")
    sweep = tmp_path / "sweep"
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    command = [
        sys.executable, str(REPO / "scripts" / "eval.py"), "-m", "benchmark=samples_groupC", "method=rar",
        "+method.target.max_rounds=1,2", "+method.target.stop=fixed", f"method.target.path={model}",
        "+method.target.steps_per_round=1",
        "limit=1", "metrics=[psnr,ssim]", "device=cpu", "montage=0", "save_images=false", "progress=false",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "collect.py"), str(sweep)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    with open(sweep / "collected.csv", newline="") as handle:
        rows = {row["overrides"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 2
    for n in (1, 2):
        (row,) = [r for key, r in rows.items() if f"+method.target.max_rounds={n}" in key]
        assert row["status"] == "ok" and row["method"] == "rar"
        assert float(row["mean_rounds"]) == n  # stop=fixed: exactly max_rounds rounds per image
        assert int(row["images"]) == 4 and 0 < float(row["psnr"]) < 100 and 0 < float(row["ssim"]) <= 1
    assert "+method.target.max_rounds=2" in (sweep / "collected.md").read_text()
