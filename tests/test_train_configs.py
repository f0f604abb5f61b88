"""Every training stage composes with every experiment, and the composed groups build what the
stage names (at tiny scale; real-scale model groups are checked on the meta device elsewhere)."""

from __future__ import annotations

import pathlib

import pytest
from hydra import compose, initialize_config_dir

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
STAGES = sorted(p.stem for p in (CONFIGS / "stage").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml") if not p.stem.startswith("abl_"))  # abl_*: tests/test_ablations.py


def _compose(overrides):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides)


def test_the_paper_stages_and_experiments_exist():
    assert {"iqa_pretrain", "lqa_align", "lqa_finetune", "cond_align", "uir", "joint"} <= set(STAGES)
    assert {"tiny", "sd35_medium", "sd35_large"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_composes_with_every_experiment(stage, experiment):
    cfg = _compose([f"stage={stage}", f"experiment={experiment}", "run_dir=/tmp/unused"])
    assert cfg.stage.name == stage and cfg.name == experiment
    for module in cfg.stage.modules:
        assert cfg[module]._target_, f"{stage}: module group {module} has no _target_"
    assert cfg.phases and all(p.max_steps >= 0 and p.trainable for p in cfg.phases)
    if experiment == "tiny":
        assert cfg.uir.config == "tiny" and cfg.lqa.llm_pretrained.startswith(cfg.tiny_dir)
    else:
        assert cfg.trainer.mixed_precision == "bf16" and cfg.uir.config == experiment


def test_joint_optimizer_is_came_with_a_cosine_schedule():
    cfg = _compose(["stage=joint", "run_dir=/tmp/unused"])
    assert cfg.optimizer._target_ == "came_pytorch.CAME"
    assert cfg.trainer.lr_scheduler == "cosine"


def test_joint_lqa_switch_sets_what_joint_trains():
    paper = _compose(["stage=joint", "run_dir=/tmp/unused"]).phases[0].trainable
    frozen = _compose(["stage=joint", "joint_lqa=frozen", "run_dir=/tmp/unused"]).phases[0].trainable
    assert list(paper) == ["uir.*", "text_adapter.*", "lqa.image_adapter.*", "lqa.llm.*lora_*"]
    assert list(frozen) == ["uir.*"]
