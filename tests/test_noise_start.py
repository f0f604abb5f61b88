"""Noise-start restorers (the noisy flow ablation): seeded start noise, the RAR and naive loops,
and the whole path at tiny scale — uir and joint stages on the noisy path, export, two images
through both pipelines (paper Table 4 "Noisy", Table 5, Fig. 7)."""

from __future__ import annotations

import pathlib

import pytest
import torch
from helpers import load_script, spy
from hydra import compose, initialize_config_dir

from rar.baselines import NaivePipeline
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig, RARPipeline
from rar.testing import build_tiny_rar_pipeline
from rar.training.build import run_training
from rar.uir.backbones import UIRModel
from rar.uir.noise import image_seeds, start_noise

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_start_noise_is_per_image_and_independent_of_the_batch():
    images = torch.randint(0, 256, (3, 3, 20, 24), generator=torch.Generator().manual_seed(0)) / 255
    z = torch.zeros(3, 4, 5, 6)
    seeds = image_seeds(images, seed=0)
    assert seeds == image_seeds(images + 1e-4, seed=0)  # 8-bit pixels (as read from files): float error does not move it
    assert seeds[1:2] == image_seeds(images[1:2], 0) and len(set(seeds)) == 3
    assert len(set(seeds) | set(image_seeds(images, 1))) == 6
    noise = start_noise(z, seeds, round_index=1)
    assert noise.shape == z.shape and abs(float(noise.mean())) < 0.2 and 0.8 < float(noise.std()) < 1.2
    assert torch.equal(start_noise(z[1:2], seeds[1:2], 1)[0], noise[1])  # batch neighbours do not matter
    assert not torch.equal(noise[0], noise[2])  # different images, different noise
    assert not torch.equal(start_noise(z, seeds, 2), noise)  # another round, another draw


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    depictqa = save_tiny_depictqa(tmp_path_factory.mktemp("pretrained") / "depictqa", phrases=["noise", "haze"])
    return build_tiny_rar_pipeline(depictqa, LoopConfig(max_rounds=2, steps_per_round=2, stop="fixed"),
                                   uir_layers=1, max_new_tokens=4, concat_lq=True)


def test_rar_loop_starts_each_round_from_seeded_noise_with_the_round_input(noisy, monkeypatch):
    calls = []
    spy(monkeypatch, UIRModel, "sample", calls)
    lq = torch.rand(2, 3, 16, 16)
    first = noisy(lq, return_latents=True)
    assert len(calls) == 2  # one integration per round (2 rounds, fixed)
    z_lq, seeds = noisy.autoencoder.encode(lq), image_seeds(lq, 0)
    (_, start, *_), kwargs = calls[0]
    torch.testing.assert_close(kwargs["z_lq"], z_lq)  # round 1: the degraded latent
    assert torch.equal(start, start_noise(z_lq, seeds, 1))
    round1 = torch.stack([t.rounds[0].latent for t in first.trajectories])
    (_, start, *_), kwargs = calls[1]
    torch.testing.assert_close(kwargs["z_lq"], round1)  # round 2: the current latent (round 1's output)
    assert torch.equal(start, start_noise(z_lq, seeds, 2))


def test_noise_start_inference_is_seeded(noisy):
    lq = torch.rand(2, 3, 16, 16)
    out = noisy(lq).images
    assert torch.equal(noisy(lq).images, out)  # same seed: same output
    torch.testing.assert_close(noisy(lq[1:]).images[0], out[1])  # alone or in a batch
    noisy.with_config(seed=1)
    try:
        assert (noisy(lq).images - out).abs().max() > 1e-3  # another seed: another output
    finally:
        noisy.with_config(seed=0)


def _compose(tiny: pathlib.Path, run: pathlib.Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=[
            "experiment=abl_noisy_flow", f"tiny_dir={tiny}", f"run_dir={run}", "trainer.progress=false",
            "trainer.batch_size=2", "data.dataset.length=4", f"data.dataset.source={ROOT / 'data/samples/train'}",
            "data.dataset.crop_size=32", *overrides,
        ])


def test_noisy_uir_and_joint_train_export_and_restore(tiny_dir, tmp_path):
    torch.manual_seed(0)
    uir = run_training(_compose(tiny_dir, tmp_path / "uir", "phases.0.max_steps=1", "phases.1.max_steps=2"))
    assert [r.steps for r in uir] == [1, 2] and all(loss > 0 for r in uir for loss in r.losses)
    (joint,) = run_training(_compose(tiny_dir, tmp_path / "joint", "stage=joint", "phases.0.max_steps=2",
                                     f"init_from={tmp_path / 'uir'}"))
    assert joint.steps == 2 and all(loss > 0 for loss in joint.losses)
    out = tmp_path / "model"
    assert load_script("export_pipeline").main([f"run_dir={tmp_path / 'joint'}", f"out={out}", "max_rounds=2",
                                                "steps_per_round=2", "include_conditioner=true"]) == 0
    lq = torch.rand(2, 3, 16, 16)
    pipe = RARPipeline.from_pretrained(out)
    assert pipe.uir.concat_lq
    result = pipe(lq)
    assert result.images.shape == lq.shape and all(1 <= len(t.rounds) <= 2 for t in result.trajectories)
    assert torch.equal(pipe(lq).images, result.images)
    naive = NaivePipeline.from_pretrained(out, stop="fixed")
    first = naive(lq).images
    assert first.shape == lq.shape and torch.equal(naive(lq).images, first)


def test_tiled_rounds_split_each_images_noise_like_its_latent(noisy, monkeypatch):
    """On latent tiles (rar.pipeline.tiling) each tile starts from its part of the image's noise."""
    from rar.pipeline.tiling import Tiling

    calls = []
    spy(monkeypatch, UIRModel, "sample", calls)
    saved = noisy.tiling
    noisy.tiling = Tiling(tile=4, overlap=2)
    try:
        lq = torch.rand(1, 3, 24, 24)
        out = noisy(lq).images
        assert out.shape == lq.shape and torch.equal(noisy(lq).images, out)
    finally:
        noisy.tiling = saved
    (_, start, *_), kwargs = calls[0]
    z_lq = noisy.autoencoder.encode(lq)
    tiles = Tiling(tile=4, overlap=2).grid(6, 6, None, 1)
    assert start.shape[0] == kwargs["z_lq"].shape[0] > 1  # several tiles of one image
    torch.testing.assert_close(start, tiles.split(start_noise(z_lq, image_seeds(lq, 0), 1)))
