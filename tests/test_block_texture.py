"""A restored flat image carries no 4-px grid with the learned autoencoder (the space-to-depth
one, with the same random UIR, does: the measure can fail)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from rar.conditioning.condition import Condition
from rar.eval.periodicity import block_periodic_energy
from rar.pipeline import RARPipeline
from rar.uir.autoencoders import (
    KLAutoencoder,
    LatentAutoencoder,
    SpaceToDepthAutoencoder,
)
from rar.uir.backbones import SD3_PRESETS, build_sd3_transformer
from rar.uir.sampler import integrate
from rar.utils.image_io import load_image


def _restore(autoencoder: LatentAutoencoder, image: torch.Tensor) -> torch.Tensor:
    """One 4-step round of a random tiny UIR (zero condition) on ``image``, through ``autoencoder``."""
    torch.manual_seed(0)
    channels = autoencoder.latent_channels
    uir = build_sd3_transformer(config=SD3_PRESETS["tiny"] | {"in_channels": channels, "out_channels": channels}).eval()
    z = autoencoder.encode(image)
    cond = Condition.zeros(image.shape[0], 8, uir.joint_attention_dim, uir.pooled_projection_dim)
    with torch.no_grad():
        latent = integrate(uir, z, cond, steps=4).latent
    return autoencoder.decode(latent, size=image.shape[-2:])


def _learned_autoencoder() -> KLAutoencoder:
    torch.manual_seed(0)
    vae = AutoencoderKL(latent_channels=16, down_block_types=["DownEncoderBlock2D"] * 3,
                        up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[16, 32, 32],
                        norm_num_groups=8, mid_block_add_attention=False)
    return KLAutoencoder(vae, scaling_factor=1.0, shift_factor=0.0)


def test_block_periodic_energy_sees_a_grid_and_ignores_flat_and_other_periods():
    flat = torch.full((1, 3, 32, 32), 0.5)
    assert block_periodic_energy(flat).item() < 1e-12
    grid = flat.clone()
    grid[..., ::4, :] += 0.1  # one bright row in every 4
    assert block_periodic_energy(grid).item() > 1e-3
    stripes = flat + 0.1 * (torch.arange(32) % 5 == 0).float()  # period 5, not 4: averages out (nearly)
    assert block_periodic_energy(stripes, 4).item() < 0.1 * block_periodic_energy(grid).item()
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        block_periodic_energy(flat[0])


def _grid_share(restored: torch.Tensor, border: int = 8) -> float:
    """Share of the restored image's variance (inside ``border``) that repeats every 4 px."""
    inner = restored[..., border:-border, border:-border]
    return block_periodic_energy(inner, 4).item() / inner.var(dim=(-2, -1), unbiased=False).mean().item()


def test_restored_flat_image_has_no_block_grid_with_the_learned_autoencoder():
    """A random UIR changes a flat image; through the space-to-depth latent the change is mostly a
    4-px grid, through the learned autoencoder it is not (a share near 1/(number of blocks))."""
    flat = torch.full((1, 3, 64, 64), 0.45)
    assert block_periodic_energy(flat, 4).item() < 1e-12
    s2d = _grid_share(_restore(SpaceToDepthAutoencoder(4), flat))
    learned = _grid_share(_restore(_learned_autoencoder(), flat))
    assert s2d > 0.5
    assert learned < 0.05


MODEL = Path(__file__).resolve().parents[1] / "models" / "tiny"


@pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="models/tiny is not in this checkout")
def test_the_committed_model_leaves_no_block_grid():
    """Three rounds of the committed tiny RAR on a flat image and on a held-out photo: the restored
    images carry no more 4-px-periodic energy than a small share of their change (the space-to-depth
    model it replaced put 93% of a flat image's change on the grid)."""
    pipe = RARPipeline.from_pretrained(MODEL, max_rounds=3, stop="fixed")
    flat = torch.full((1, 3, 64, 64), 0.45)
    photo = load_image(MODEL.parents[1] / "data/samples/heldout/coffee.png")[None, :, :64, :64]
    for image in (flat, photo):
        restored = pipe(image).images
        change = restored - image
        assert change.abs().mean() > 1e-3  # the rounds did change the image
        share = block_periodic_energy(change[..., 8:-8, 8:-8], 4).item() / change[..., 8:-8, 8:-8].var().item()
        assert share < 0.05
