"""The real configs of the `uir` stage compose, build and run (tiny models, CPU)."""

from __future__ import annotations

import pathlib

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rar.conditioning.sd3_text import SD3TextConditioner
from rar.conditioning.sources import TextCondition, ZeroCondition
from rar.training import checkpoint as ckpt
from rar.training.build import build_phases, build_stage, run_training
from rar.uir.autoencoders import KLAutoencoder
from rar.uir.backbones import SD3UIR

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def compose_uir(tmp_path, tiny_dir, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[
            "stage=uir", f"tiny_dir={tiny_dir}", f"run_dir={tmp_path / 'run'}", "trainer.progress=false",
            *overrides,
        ])


@pytest.mark.parametrize("condition, source, children", [
    ("text", TextCondition, ["autoencoder", "uir", "conditioner"]),
    ("none", ZeroCondition, ["autoencoder", "uir"]),
])
def test_condition_choice_builds_the_right_stage(tmp_path, tiny_dir, condition, source, children):
    cfg = compose_uir(tmp_path, tiny_dir, f"condition={condition}")
    stage, loaded = build_stage(cfg)
    assert [name for name, _ in stage.named_children()] == children and loaded == set()
    assert isinstance(stage.condition, source)
    assert isinstance(stage.autoencoder, KLAutoencoder) and isinstance(stage.uir, SD3UIR)
    if condition == "text":
        assert isinstance(stage.conditioner, SD3TextConditioner)
        assert stage.conditioner.seq_len == 32
    dataset = hydra.utils.instantiate(cfg.data.dataset, _convert_="all")
    batch = dataset.collate([dataset[0], dataset[1]])
    out = stage(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_the_paper_settings_are_the_default_lqa_condition_and_two_phase_layout(tmp_path, tiny_dir):
    cfg = compose_uir(tmp_path, tiny_dir)
    assert cfg.condition == "lqa"
    assert OmegaConf.to_container(cfg.phases) == OmegaConf.to_container(compose_uir(tmp_path, tiny_dir, "condition=lqa").phases)
    assert list(cfg.stage.modules) == ["autoencoder", "lqa", "text_adapter", "uir"]
    source = hydra.utils.instantiate(cfg.stage.target.condition)
    assert set(source.requires) <= set(cfg.stage.modules)
    phases = build_phases(cfg)
    assert [(p.name, p.trainable) for p in phases] == [
        ("adapter", ("text_adapter.*",)), ("uir", ("text_adapter.*", "uir.*"))]
    resolved = OmegaConf.to_container(cfg.stage, resolve=True)
    assert resolved["target"]["val_dataset"] is None or "_target_" in resolved["target"]["val_dataset"]


def test_train_entry_point_runs_two_steps_and_exports(tmp_path, tiny_dir):
    # the tiny experiment's uir stage: true-text condition, a quarter of each batch from its own round,
    # a quarter of the rest under another item's text
    cfg = compose_uir(tmp_path, tiny_dir, "condition=text", "phases.0.max_steps=2", "trainer.batch_size=4",
                      "data.dataset.length=8", "stage.target.own_round_share=0.25", "stage.target.wrong_share=0.25")
    (result,) = run_training(cfg)
    run_dir = tmp_path / "run"
    assert result.steps == 2 and all(loss > 0 for loss in result.losses)
    assert (run_dir / "model/uir" / ckpt.WEIGHTS_NAME).is_file()
    assert (run_dir / "checkpoints/main/step_0000002").is_dir()
    assert ckpt.read_meta(run_dir)["stage"] == "uir"
