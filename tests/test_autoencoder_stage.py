"""The `autoencoder` stage (tiny experiment only): it learns, its run folder loads through the SD3.5
VAE loader with the latent shift/scale it measured, and those normalise its training latents."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from diffusers import AutoencoderKL
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from rar.training.build import run_training
from rar.training.stages.autoencoder import AutoencoderStage, latent_statistics
from rar.uir.autoencoders import KLAutoencoder, build_kl_autoencoder

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _tiny_vae(**overrides) -> AutoencoderKL:
    torch.manual_seed(0)
    kwargs = {"latent_channels": 16, "down_block_types": ["DownEncoderBlock2D"] * 3,
              "up_block_types": ["UpDecoderBlock2D"] * 3, "block_out_channels": [8, 16, 16], "layers_per_block": 1,
              "norm_num_groups": 8, "mid_block_add_attention": False}
    return AutoencoderKL(**(kwargs | overrides))


class _Batch:
    def __init__(self, lq: torch.Tensor, hq: torch.Tensor) -> None:
        self.lq, self.hq = lq, hq


def _smooth_images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bilinear")


def test_latent_statistics_normalise_what_they_measured():
    vae = _tiny_vae().eval()
    images = _smooth_images(6)
    stats = latent_statistics(vae, [images[:4], images[4:]])
    with torch.no_grad():
        z = vae.encode(images * 2 - 1).latent_dist.mode()
    assert stats.count == z.numel()
    assert stats.shift_factor == pytest.approx(z.mean().item(), abs=1e-5)
    normalised = (z - stats.shift_factor) * stats.scaling_factor
    assert normalised.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert normalised.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


def test_autoencoder_stage_lowers_the_reconstruction_loss():
    stage = AutoencoderStage(_tiny_vae())
    images = _smooth_images(4)
    batch = _Batch(images * 0.5, images)  # a darkened LQ and its clean HQ, both reconstructed
    optimizer = torch.optim.Adam(stage.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = stage(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert set(out.logs) == {"mse", "l1", "kl", "psnr"}


def test_autoencoder_stage_rejects_bad_input():
    stage = AutoencoderStage(_tiny_vae())
    with pytest.raises(ValueError, match="same size"):
        stage(_Batch(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 16)))
    with pytest.raises(ValueError, match="multiples of the autoencoder's stride 4"):
        stage(_Batch(torch.rand(1, 3, 18, 18), torch.rand(1, 3, 18, 18)))
    with pytest.raises(TypeError, match="AutoencoderKL"):
        AutoencoderStage(torch.nn.Conv2d(3, 3, 1))


def test_stage_config_trains_and_its_folder_loads_through_the_sd35_vae_loader(tmp_path):
    run_dir = tmp_path / "autoencoder"
    overrides = ["stage=autoencoder", f"run_dir={run_dir}", "trainer.batch_size=2", "trainer.progress=false",
                 "phases.0.max_steps=3", "data.dataset.length=8", "stage.target.stats_samples=6",
                 "stage.target.stats_batch_size=4", "+stage.target.vae.block_out_channels=[8,16,16]"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
        loader_cfg = compose(config_name="train", overrides=["autoencoder=tiny_kl", "name=tiny"]).autoencoder
    results = run_training(cfg)
    assert results[0].steps == 3 and len(results[0].losses) == 3

    config = json.loads((run_dir / "model" / "vae" / "config.json").read_text())
    assert config["_class_name"] == "AutoencoderKL" and config["latent_channels"] == 16
    assert config["shift_factor"] != 0.0 and config["scaling_factor"] > 0

    # the tiny loader config reads <folder>/vae (default: make_tiny_models' random one; the tiny
    # experiment passes autoencoder.pretrained=runs/<name>/autoencoder/model)
    assert loader_cfg.pretrained == "runs/tiny/pretrained/autoencoder" and loader_cfg.subfolder == "vae"
    autoencoder = instantiate(loader_cfg, pretrained=str(run_dir / "model"))
    assert isinstance(autoencoder, KLAutoencoder)
    assert autoencoder.shift_factor == pytest.approx(config["shift_factor"])
    assert autoencoder.scaling_factor == pytest.approx(config["scaling_factor"])
    assert autoencoder.stride == 4 and autoencoder.latent_channels == 16

    # encode/decode shapes, odd sizes included
    image = torch.rand(1, 3, 30, 21)
    z = autoencoder.encode(image)
    assert z.shape == (1, 16, 8, 6)
    assert autoencoder.decode(z, size=(30, 21)).shape == (1, 3, 30, 21)

    # the stats crops (first items of the training set, LQ and HQ), normalised: zero mean, unit std
    dataset = instantiate(cfg.data.dataset, _convert_="all")
    batch = dataset.collate([dataset[i] for i in range(6)])
    latents = autoencoder.encode(torch.cat([batch.lq, batch.hq]))
    assert latents.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert latents.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)

    same = build_kl_autoencoder(str(run_dir / "model"), subfolder="vae")  # the SD3.5 loader's defaults
    assert same.scaling_factor == autoencoder.scaling_factor and same.shift_factor == autoencoder.shift_factor
