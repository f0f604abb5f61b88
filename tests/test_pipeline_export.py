"""scripts/export_pipeline.py: a training run directory (config.yaml + model/) becomes a model folder."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from helpers import load_script
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file

from rar.baselines import NaivePipeline
from rar.core.timing import StageClock
from rar.lqa.text_adapter import ZeroTextAdapter
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import RARPipeline
from rar.testing import save_tiny_autoencoder, save_tiny_sd3_text_encoders
from rar.training import checkpoint as ckpt
from rar.training.build import build_stage

ROOT = pathlib.Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished `uir` run with condition=lqa: its config.yaml and model/ (text adapter and UIR changed)."""
    tiny = tmp_path_factory.mktemp("pretrained")
    save_tiny_depictqa(tiny / "depictqa", phrases=["noise", "haze", "dark"])
    save_tiny_sd3_text_encoders(tiny / "sd3_text")
    save_tiny_autoencoder(tiny / "autoencoder")
    run = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["stage=uir", "condition=lqa",
                                          f"tiny_dir={tiny}", f"run_dir={run}"])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    stage, _ = build_stage(cfg)
    with torch.no_grad():
        for p in stage.text_adapter.parameters():
            p.add_(0.01)
    keys = {f"text_adapter.{k}" for k in stage.text_adapter.state_dict()} | {"uir.backbone.proj_out.weight"}
    ckpt.export_model(stage, run, keys)
    return run


def _uir_only_run(tmp_path, tiny_dir, condition: str):
    """A finished uir run without the LQA (condition=none|text): its model/ holds the UIR (changed)."""
    run = tmp_path / "run"
    run.mkdir()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["stage=uir", f"condition={condition}", f"tiny_dir={tiny_dir}",
                                          f"run_dir={run}"])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    stage, _ = build_stage(cfg)
    with torch.no_grad():
        stage.uir.backbone.proj_out.weight.add_(0.01)
    ckpt.export_model(stage, run, {f"uir.{k}" for k in stage.uir.state_dict()})
    return run, stage


def test_export_rebuilds_the_run_and_writes_a_loadable_folder(run_dir, tmp_path):
    export = load_script("export_pipeline")
    out = tmp_path / "model"
    assert export.main([f"run_dir={run_dir}", f"out={out}", "rar=fixed", "max_rounds=1", "steps_per_round=2",
                        "include_conditioner=true"]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["_source"]["run_dir"] == str(run_dir) and index["_source"]["stage"] == "uir"
    assert index["conditioner"][0] == "rar.conditioning.sd3_text.SD3TextConditioner"
    pipe = RARPipeline.from_pretrained(out)
    assert (pipe.config.stop, pipe.config.max_rounds, pipe.config.steps_per_round) == ("fixed", 1, 2)
    trained = load_file(str(run_dir / "model/text_adapter" / ckpt.WEIGHTS_NAME))
    for key, value in trained.items():
        assert torch.equal(pipe.text_adapter.state_dict()[key], value), key
    result = pipe(torch.rand(1, 3, 12, 20))
    assert result.images.shape == (1, 3, 12, 20) and len(result.trajectories[0].rounds) == 1
    naive = NaivePipeline.from_pretrained(out)
    assert naive(torch.rand(1, 3, 8, 8)).images.shape == (1, 3, 8, 8)


def test_unconditioned_run_exports_as_the_zero_condition_control(run_dir, tiny_dir, tmp_path):
    """A condition=none UIR needs an LQA (lqa_from) and then runs in the RAR loop with all-zero
    conditions, as in its training."""
    export = load_script("export_pipeline")
    run, stage = _uir_only_run(tmp_path, tiny_dir, "none")
    with pytest.raises(ValueError, match=r"condition=none run: give lqa_from"):
        export.main([f"run_dir={run}", f"out={tmp_path / 'model'}"])
    with pytest.raises(SystemExit, match="out="):
        export.main([f"run_dir={run}"])

    assert export.main([f"run_dir={run}", f"out={tmp_path / 'model'}", f"lqa_from={run_dir}", "max_rounds=2"]) == 0
    pipe = RARPipeline.from_pretrained(tmp_path / "model")
    assert isinstance(pipe.text_adapter, ZeroTextAdapter) and pipe.text_adapter.seq_len == 32
    torch.testing.assert_close(pipe.uir.backbone.proj_out.weight, stage.uir.backbone.proj_out.weight)
    cond, assessment = pipe.assess(pipe.autoencoder.encode(torch.rand(2, 3, 16, 16)), 1, 0, StageClock(pipe.device))
    assert cond.prompt_embeds.shape == (2, 32, 64) and not cond.prompt_embeds.any() and not cond.pooled.any()
    assert len(assessment.text) == 2  # the LQA still answers (logged, and the stop rule compares)
    result = pipe(torch.rand(1, 3, 12, 20))
    assert result.images.shape == (1, 3, 12, 20) and 1 <= len(result.trajectories[0].rounds) <= 2


def test_text_taught_run_exports_with_the_lqa_and_text_adapter_of_another_run(run_dir, tiny_dir, tmp_path):
    """The tiny model's layout: a condition=text UIR, the LQA and text adapter of a cond_align run
    (here the uir fixture run, which holds both): a RAR folder that needs no text encoder."""
    export = load_script("export_pipeline")
    run, _ = _uir_only_run(tmp_path, tiny_dir, "text")
    with pytest.raises(ValueError, match="holds no text adapter"):
        export.main([f"run_dir={run}", f"out={tmp_path / 'bad'}", f"lqa_from={run_dir}", f"adapter_from={run}"])
    with pytest.raises(ValueError, match="adapter_from is for a condition=text run"):
        export.main([f"run_dir={run_dir}", f"out={tmp_path / 'bad'}", f"adapter_from={run_dir}"])
    assert not (tmp_path / "bad").exists()

    out = tmp_path / "model"
    assert export.main([f"run_dir={run}", f"out={out}", f"lqa_from={run_dir}", f"adapter_from={run_dir}"]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["_source"]["adapter_from"] == str(run_dir) and index["conditioner"] is None
    pipe = RARPipeline.from_pretrained(out)
    trained = load_file(str(run_dir / "model/text_adapter" / ckpt.WEIGHTS_NAME))
    for key, value in trained.items():
        assert torch.equal(pipe.text_adapter.state_dict()[key], value), key
    result = pipe(torch.rand(1, 3, 12, 20))
    assert result.images.shape == (1, 3, 12, 20)
