"""Ablation configs: eval-time loop ablations (``configs/ablation/``, for scripts/eval.py) and
training-side ablations (``configs/experiment/abl_*.yaml``) compose and set what they claim, and a
tiny ablation sweep runs end to end and merges into one table (scripts/eval.py -m, scripts/collect.py)."""

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

# ablation file -> the loop settings it must set (paper Table 6 / S.6, S.3, S.7)
EVAL_ABLATIONS: dict[str, dict] = {
    **{f"rounds_fixed_{n}": {"max_rounds": n, "stop": "fixed"} for n in (1, 2, 3, 4)},
    "stop_compare": {"max_rounds": 4, "stop": "compare"},
    "prompt_fixed": {"prompt_pool": "fixed"},
    "prompt_random": {"prompt_pool": "random"},
    "max_rounds_4_stop": {"max_rounds": 4, "stop": "compare"},
    "max_rounds_16_stop": {"max_rounds": 16, "stop": "compare"},
    "max_rounds_4_nostop": {"max_rounds": 4, "stop": "fixed"},
    "max_rounds_16_nostop": {"max_rounds": 16, "stop": "fixed"},
}

# experiment -> (the stage it selects by default, the stages it applies to)
TRAIN_ABLATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "abl_noisy_flow": ("uir", ("uir",)),
    "abl_pixel_lqa": ("uir", ("cond_align", "uir")),
    "abl_text_condition": ("uir", ("uir",)),
    "abl_sd15": ("uir", ("uir",)),
    "abl_non_iterative": ("joint", ("joint",)),
}


def _compose(config: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config, overrides=overrides)


def test_every_ablation_file_is_listed():
    assert {p.stem for p in (CONFIGS / "ablation").glob("*.yaml")} == set(EVAL_ABLATIONS)
    assert {p.stem for p in (CONFIGS / "experiment").glob("abl_*.yaml")} == set(TRAIN_ABLATIONS)


@pytest.mark.parametrize("name", sorted(EVAL_ABLATIONS))
def test_eval_ablation_sets_the_loop_settings_it_claims(name):
    for overrides in ([f"ablation={name}"], ["method=rar", f"ablation={name}"]):
        cfg = _compose("eval", overrides)
        target = dict(cfg.method.target)
        assert target["_target_"] == RAR_LOADER, f"{name} does not evaluate method=rar"
        assert cfg.method.name == f"rar_{name}"
        loop = {k: v for k, v in target.items() if k not in ("_target_", "path", "dtype", "fast")}
        assert loop == EVAL_ABLATIONS[name]
        LoopConfig().replace(**loop)  # every key is a real loop setting with a valid value


def test_eval_ablations_land_in_distinct_run_folders():
    names = {_compose("eval", [f"ablation={n}"]).method.name for n in EVAL_ABLATIONS}
    assert len(names) == len(EVAL_ABLATIONS)
    assert _compose("eval", ["method=rar"]).method.name == "rar"  # no ablation: the model's own settings


@pytest.mark.parametrize("experiment", sorted(TRAIN_ABLATIONS))
def test_training_ablation_composes_with_its_stages(experiment):
    default_stage, stages = TRAIN_ABLATIONS[experiment]
    assert _compose("train", [f"experiment={experiment}", "run_dir=/tmp/unused"]).stage.name == default_stage
    for stage in stages:
        cfg = _compose("train", [f"stage={stage}", f"experiment={experiment}", "run_dir=/tmp/unused"])
        assert cfg.name == experiment and cfg.stage.name == stage
        assert cfg.trainer.log_every == 25  # the tiny experiment's settings underneath
        for module in cfg.stage.modules:
            assert cfg[module]._target_, f"{experiment}/{stage}: module group {module} has no _target_"
        if experiment == "abl_noisy_flow":
            assert cfg.uir.concat_lq is True
            assert cfg.stage.target.path._target_ == "rar.uir.flow.NoisyConditionalPath"
            assert cfg.condition == "lqa" and "text_adapter" in cfg.stage.modules
        elif experiment == "abl_pixel_lqa":
            assert cfg.lqa.image_space == "pixel" and "lqa" in cfg.stage.modules
        elif experiment == "abl_text_condition":
            assert cfg.condition == "text" and "conditioner" in cfg.stage.modules
            assert cfg.stage.target.condition._target_ == "rar.conditioning.sources.TextCondition"
        elif experiment == "abl_sd15":  # compose-only: there is no tiny SD1.5 UNet config
            assert cfg.uir._target_ == "rar.uir.backbones.build_sd15_unet" and cfg.uir.config == "sd15"
            assert cfg.autoencoder._target_ == "rar.uir.autoencoders.build_kl_autoencoder"
            assert cfg.text_adapter.joint_dim == 768 and cfg.lqa.image_adapter.latent_channels == 4
        elif experiment == "abl_non_iterative":
            assert cfg.stage.target.iterative is False


def test_baseline_keeps_the_paper_settings():
    """The ablations change only their own row: the plain stages keep the paper's choices."""
    uir = _compose("train", ["stage=uir", "run_dir=/tmp/unused"])
    assert uir.stage.target.path._target_ == "rar.uir.flow.NoiseFreePath" and uir.uir.concat_lq is False
    assert uir.lqa.image_space == "latent"
    assert _compose("train", ["stage=joint", "run_dir=/tmp/unused"]).stage.target.iterative is True


def test_ablation_sweep_collects_one_row_per_ablation(tmp_path):
    from rar.pipeline.tiny import save_tiny_rar_model

    model = save_tiny_rar_model(tmp_path / "model")
    sweep = tmp_path / "sweep"
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    command = [
        sys.executable, str(REPO / "scripts" / "eval.py"), "-m", "benchmark=samples_groupC", "method=rar",
        "ablation=rounds_fixed_1,rounds_fixed_2", f"method.target.path={model}", "+method.target.steps_per_round=1",
        "limit=1", "metrics=[psnr,ssim]", "device=cpu", "montage=0", "save_images=false", "progress=false",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "collect.py"), str(sweep)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    with open(sweep / "collected.csv", newline="") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"rar_rounds_fixed_1", "rar_rounds_fixed_2"}
    for n in (1, 2):
        row = rows[f"rar_rounds_fixed_{n}"]
        assert row["status"] == "ok" and f"ablation=rounds_fixed_{n}" in row["overrides"]
        assert float(row["mean_rounds"]) == n  # stop=fixed: exactly max_rounds rounds per image
        assert int(row["images"]) == 4 and 0 < float(row["psnr"]) < 100 and 0 < float(row["ssim"]) <= 1
    assert "rar_rounds_fixed_2" in (sweep / "collected.md").read_text()
