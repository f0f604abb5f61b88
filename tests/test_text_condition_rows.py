"""Paper Table 4's text-conditioned rows at tiny scale: a UIR trained with ``condition=text``
(``experiment=abl_text_condition``) is exported with the LQA of another run and the text encoders,
then restores two images as "Text, Pixel" (:class:`NaivePipeline`: pixel LQA) and "Text, Latent"
(:class:`TextLatentPipeline`: the latent LQA's text through the text encoders, RAR's latent loop)."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from helpers import load_script, spy
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rar.baselines import NaivePipeline, TextLatentPipeline
from rar.conditioning.sd3_text import SD3TextConditioner
from rar.lqa.model import DepictQA
from rar.pipeline import RARPipeline
from rar.training import checkpoint as ckpt
from rar.training.build import build_stage, run_training
from rar.training.phases import matching_parameters

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _compose(tiny: pathlib.Path, run: pathlib.Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=[
            f"tiny_dir={tiny}", f"run_dir={run}", "trainer.progress=false", "trainer.batch_size=2",
            "data.dataset.length=4", f"data.dataset.source={ROOT / 'data/samples/train'}", "data.dataset.crop_size=32",
            *overrides,
        ])


@pytest.fixture(scope="module")
def model(tiny_dir, tmp_path_factory):
    """A 2-step condition=text uir run, exported with the LQA of a (stand-in) lqa_finetune run."""
    root = tmp_path_factory.mktemp("text_rows")
    lqa_run = root / "lqa_finetune"
    cfg = _compose(tiny_dir, lqa_run, "stage=uir", "condition=lqa")
    (lqa_run).mkdir()
    (lqa_run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.manual_seed(0)
    stage, _ = build_stage(cfg)
    ckpt.export_model(stage, lqa_run, set(matching_parameters(stage, ("lqa.image_adapter.*", "lqa.llm.*lora_*"))))
    (res,) = run_training(_compose(tiny_dir, root / "uir", "experiment=abl_text_condition", "phases.0.max_steps=2"))
    assert res.steps == 2 and all(loss > 0 for loss in res.losses)
    out = root / "model"
    export = load_script("export_pipeline")
    assert export.main([f"run_dir={root / 'uir'}", f"lqa_from={lqa_run}", f"out={out}", "max_rounds=2",
                        "steps_per_round=2"]) == 0
    return out, lqa_run


def test_export_holds_the_lqa_and_the_text_encoders_and_no_text_adapter(model):
    out, lqa_run = model
    index = json.loads((out / "model_index.json").read_text())
    assert index["text_adapter"] is None and index["lqa"][0] == "rar.lqa.model.DepictQA"
    assert index["conditioner"][0] == "rar.conditioning.sd3_text.SD3TextConditioner"
    assert index["_source"]["lqa_from"] == str(lqa_run)
    with pytest.raises(ValueError, match="no text adapter.*method=naive.*method=text_latent"):
        RARPipeline.from_pretrained(out)


def test_text_pixel_row_runs_the_naive_pipeline(model, monkeypatch):
    assessed = []
    spy(monkeypatch, DepictQA, "assess", assessed)
    lq = torch.rand(2, 3, 16, 16)
    result = NaivePipeline.from_pretrained(model[0], stop="fixed")(lq)
    assert result.images.shape == lq.shape and all(len(t.rounds) == 2 for t in result.trajectories)
    assert all(kwargs["space"] == "pixel" for _, kwargs in assessed)


def test_text_latent_row_encodes_the_latent_lqas_answer(model, monkeypatch, tmp_path):
    pipe = TextLatentPipeline.from_pretrained(model[0], stop="fixed")
    again = TextLatentPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "again"))
    assert again.config == pipe.config and isinstance(again.conditioner, SD3TextConditioner)
    assert pipe.lqa.image_space == "latent"
    assessed, encoded, decoded = [], [], []
    spy(monkeypatch, DepictQA, "assess", assessed)
    spy(monkeypatch, SD3TextConditioner, "forward", encoded)
    spy(monkeypatch, pipe.autoencoder, "decode", decoded)
    lq = torch.rand(2, 3, 16, 16)
    result = pipe(lq)
    assert result.images.shape == lq.shape and all(len(t.rounds) == 2 for t in result.trajectories)
    # latent assessment; one decode of the kept latents, one of z_lq for the input's detail (RAR's loop)
    assert pipe.config.input_detail and len(assessed) == len(encoded) == 2 and len(decoded) == 2
    assert assessed[0][0][1].shape[1] == pipe.autoencoder.latent_channels
    assert encoded[0][0][1] == [t.rounds[0].text for t in result.trajectories]  # its text is what is encoded
    assert set(result.seconds) >= {"assess", "text_encode", "restore"}
