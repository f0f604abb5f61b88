"""The paper's schedule (epochs, global batch, WarmupDecayLR) turned into steps, warmup and
gradient accumulation, checked from the real-scale configs themselves."""

from __future__ import annotations

import math
import pathlib

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rar.training.build import build_phases, build_schedule, stage_target
from rar.training.loop import TrainConfig
from rar.training.phases import Phase
from rar.training.schedule import Schedule, check_warmup, resolve_schedule

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
DATASET = 100_000  # samples per epoch, a stand-in for the real corpus size


def _derived(experiment: str, stage: str, processes: int = 8, dataset: int = DATASET, extra=()):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", f"stage={stage}", "run_dir=/tmp/x", *extra])
    config = TrainConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))
    return cfg, *build_schedule(cfg, build_phases(cfg), config, dataset, processes)


def test_resolve_by_hand():
    phases = [Phase("a", 1, ("x",)), Phase("b", 1, ("x",))]
    got = resolve_schedule(Schedule((1.0, 2.5), 64, "linear", 0.1), phases, 1000, per_device_batch=8, processes=4)
    assert got.gradient_accumulation_steps == 2 and got.lr_scheduler == "linear"
    assert [p.max_steps for p in got.phases] == [16, 40]  # ceil(1000/64), ceil(2500/64)
    assert [p.warmup_steps for p in got.phases] == [2, 4]
    assert [p.trainable for p in got.phases] == [("x",), ("x",)]


@pytest.mark.parametrize(("stage", "epochs", "scheduler"), [
    ("lqa_align", [20], "linear"), ("lqa_finetune", [1], "linear"), ("cond_align", [20], "cosine"),
    ("uir", [1, 10], "cosine"), ("joint", [5], "cosine"),
])
def test_sd35_medium_follows_the_paper_schedule(stage, epochs, scheduler):
    cfg, phases, config = _derived("sd35_medium", stage)
    assert config.batch_size * 8 * config.gradient_accumulation_steps == 256  # the paper's global batch
    assert config.gradient_accumulation_steps == 1 and config.lr_scheduler == scheduler
    assert [p.max_steps for p in phases] == [math.ceil(e * DATASET / 256) for e in epochs]
    assert all(0 < p.warmup_steps < p.max_steps for p in phases)
    assert [p.warmup_steps for p in phases] == [round(0.03 * p.max_steps) for p in phases]


def test_sd35_large_reaches_256_by_accumulation_and_joint_is_logit_normal():
    cfg, phases, config = _derived("sd35_large", "joint")
    assert (config.batch_size, config.gradient_accumulation_steps) == (16, 2)
    assert phases[0].max_steps == math.ceil(5 * DATASET / 256)
    assert stage_target(cfg).timestep_sampling == "logit_normal"
    tiny, _, _ = _derived("tiny", "joint", processes=1, dataset=16)
    assert stage_target(tiny).timestep_sampling == "uniform"  # the tiny experiment keeps its own setting


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="not a multiple"):
        _derived("sd35_medium", "joint", processes=3)
    with pytest.raises(ValueError, match="no schedule: block"):
        _derived("sd35_medium", "iqa_pretrain")
    with pytest.raises(ValueError, match="warmup of 500 steps is not shorter"):
        _derived("tiny", "joint", processes=1, extra=["trainer.warmup_steps=500"])
    with pytest.raises(ValueError, match="gives epochs for 1 phases"):
        resolve_schedule(Schedule((1.0,), 8, "linear"), [Phase("a", 1, ("x",))] * 2, 10, 8, 1)
    with pytest.raises(ValueError, match="warmup_ratio"):
        Schedule((1.0,), 8, "linear", warmup_ratio=1.0)
    check_warmup([Phase("zero", 0, ("x",))], 10)  # a skipped phase has nothing to warm up
