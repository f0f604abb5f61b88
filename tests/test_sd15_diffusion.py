"""SD1.5 as the paper uses it (Table 4 / S.4): a noise-prediction restorer (DDPM epsilon or v,
DDIM sampling) conditioned on CLIP-L embeddings — the schedule's math on an oracle, the CLIP-L
conditioner, the configs, and the tiny path: uir stage, export, two images through RAR."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from helpers import load_script
from hydra import compose, initialize_config_dir

from rar.conditioning.clip_text import build_clip_text_conditioner
from rar.conditioning.condition import Condition
from rar.pipeline import RARPipeline
from rar.training.build import build_stage, run_training
from rar.training.stages.cond_align import condition_loss
from rar.training.stages.joint import JointStage
from rar.uir.diffusion import (
    DiffusionPath,
    DiffusionUIR,
    NoiseSchedule,
    build_sd15_diffusion,
)
from rar.uir.flow import NoiseFreePath

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=["run_dir=/tmp/unused", *overrides])


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_training_target_and_ddim_on_an_oracle(prediction):
    """The path's target is eps (or diffusers' v); a model predicting it exactly is sampled by DDIM
    to the clean latent, from any noise, in any number of steps."""
    schedule = NoiseSchedule(prediction_type=prediction)
    uir = build_sd15_diffusion(config="tiny", schedule=schedule)
    z_lq, z_hq = torch.randn(3, 48, 4, 4), torch.randn(3, 48, 4, 4)
    sample = DiffusionPath(schedule).sample(z_lq, z_hq, torch.rand(3), generator=torch.Generator().manual_seed(0))
    k = schedule.timestep(sample.t)
    assert torch.equal(schedule.timestep(schedule.time(k)), k) and sample.z_lq is z_lq
    alpha = schedule.training().alphas_cumprod[k].view(-1, 1, 1, 1)
    eps = (sample.x_t - alpha.sqrt() * z_hq) / (1 - alpha).sqrt()
    expected = eps if prediction == "epsilon" else alpha.sqrt() * eps - (1 - alpha).sqrt() * z_hq
    torch.testing.assert_close(sample.target, expected, rtol=1e-4, atol=1e-4)

    def oracle(x, k, cond, z):
        a = schedule.training().alphas_cumprod[k].view(-1, 1, 1, 1)
        e = (x - a.sqrt() * z_hq) / (1 - a).sqrt()
        return e if prediction == "epsilon" else a.sqrt() * e - (1 - a).sqrt() * z_hq

    uir.predict = oracle
    cond = Condition(torch.zeros(3, 16, 32), torch.zeros(3, 0))
    for steps in (1, 4):
        out = uir.sample(torch.randn(3, 48, 4, 4), cond, steps, z_lq=z_lq)
        torch.testing.assert_close(out, z_hq, rtol=1e-3, atol=1e-3)


def test_clip_l_conditioner_gives_the_unet_context_and_no_pooled(tiny_dir):
    conditioner = build_clip_text_conditioner(str(tiny_dir / "sd15_text"))
    cond = conditioner(["noise", "haze, dark", "noise"])
    assert cond.prompt_embeds.shape == (3, 16, 32) and cond.pooled.shape == (3, 0)
    assert (conditioner.seq_len, conditioner.joint_dim, conditioner.pooled_dim) == (16, 32, 0)
    assert conditioner.encoded_texts == 2 and torch.equal(cond.prompt_embeds[0], cond.prompt_embeds[2])
    loss, logs = condition_loss(Condition(torch.randn(3, 16, 32), torch.zeros(3, 0)), cond)
    assert torch.isfinite(loss) and logs["mse_pooled"] == 0.0


def test_real_scale_config_is_sd15_with_clip_l_and_the_diffusion_path():
    for stage in ("lqa_align", "lqa_finetune", "cond_align", "uir"):
        cfg = _compose("experiment=abl_sd15", f"stage={stage}")
        assert cfg.autoencoder.pretrained == cfg.uir.pretrained == cfg.conditioner.pretrained
        assert cfg.lqa.image_adapter.latent_channels == 4
    cfg = _compose("experiment=abl_sd15")
    assert cfg.uir._target_ == "rar.uir.diffusion.build_sd15_diffusion" and cfg.uir.config == "sd15"
    assert cfg.conditioner._target_ == "rar.conditioning.clip_text.build_clip_text_conditioner"
    assert (cfg.text_adapter.seq_len, cfg.text_adapter.joint_dim, cfg.text_adapter.pooled_dim) == (77, 768, 0)
    assert cfg.stage.target.path._target_ == "rar.uir.diffusion.DiffusionPath"
    assert dict(cfg.stage.target.path.schedule) == dict(cfg.uir.schedule)
    assert cfg.uir.schedule.prediction_type == "epsilon" and cfg.trainer.mixed_precision == "bf16"


def test_stages_refuse_a_mismatched_path(tiny_dir):
    cfg = _compose("experiment=abl_sd15_tiny", f"tiny_dir={tiny_dir}", "uir_path._target_=rar.uir.flow.NoisyConditionalPath",
                   "~uir_path.schedule")
    with pytest.raises(ValueError, match="disagree on the noise schedule"):
        build_stage(cfg)
    stage, _ = build_stage(_compose("experiment=abl_sd15_tiny", f"tiny_dir={tiny_dir}"))
    with pytest.raises(ValueError, match="joint stage trains flow restorers"):
        JointStage(stage.autoencoder, stage.lqa, stage.text_adapter, stage.uir, path=NoiseFreePath())


def test_tiny_sd15_trains_exports_and_restores_two_images(tiny_dir, tmp_path):
    root = ROOT / "data/samples/train"
    torch.manual_seed(0)
    cfg = _compose("experiment=abl_sd15_tiny", f"tiny_dir={tiny_dir}", f"run_dir={tmp_path / 'uir'}",
                   "trainer.progress=false", "trainer.batch_size=2", "data.dataset.length=4",
                   f"data.dataset.source={root}", "data.dataset.crop_size=32", "phases.0.max_steps=1",
                   "phases.1.max_steps=2")
    results = run_training(cfg)
    assert [r.steps for r in results] == [1, 2] and all(torch.isfinite(torch.tensor(r.losses)).all() for r in results)
    out = tmp_path / "model"
    assert load_script("export_pipeline").main([f"run_dir={tmp_path / 'uir'}", f"out={out}", "max_rounds=2",
                                                "steps_per_round=2", "include_conditioner=true"]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["uir"][0] == "rar.uir.diffusion.DiffusionUIR"
    assert index["conditioner"][0] == "rar.conditioning.clip_text.CLIPTextConditioner"
    pipe = RARPipeline.from_pretrained(out)
    assert isinstance(pipe.uir, DiffusionUIR) and pipe.uir.schedule == NoiseSchedule(prediction_type="v_prediction")
    lq = torch.rand(2, 3, 16, 16)
    result = pipe(lq)
    assert result.images.shape == lq.shape and all(1 <= len(t.rounds) <= 2 for t in result.trajectories)
    assert torch.equal(pipe(lq).images, result.images)  # seeded noise start
    other = RARPipeline.from_pretrained(out, seed=1, stop="fixed", max_rounds=1)(lq).images
    first = RARPipeline.from_pretrained(out, stop="fixed", max_rounds=1)(lq).images
    assert (other - first).abs().max() > 1e-4
