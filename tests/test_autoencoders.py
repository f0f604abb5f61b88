"""Autoencoders: lossless space-to-depth, padding/cropping, diffusers AutoencoderKL scale/shift."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from rar.uir.autoencoders import KLAutoencoder, SpaceToDepthAutoencoder, build_kl_autoencoder


def images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [(32, 48), (37, 50), (5, 3), (1, 1)])
def test_space_to_depth_is_lossless_at_any_size(size):
    ae = SpaceToDepthAutoencoder(4)
    x = images(2, *size)
    z = ae.encode(x)
    assert ae.latent_channels == 48 and ae.stride == 4
    assert z.shape == (2, 48, -(-size[0] // 4), -(-size[1] // 4)) == (2, 48, *ae.latent_size(*size))
    assert torch.equal(ae.decode(z, size=size), x)


def test_padding_is_reflect_and_decode_without_size_keeps_padding():
    ae = SpaceToDepthAutoencoder(4)
    x = images(1, 10, 13)
    padded = ae.decode(ae.encode(x))
    assert padded.shape == (1, 3, 12, 16)
    assert torch.equal(padded, F.pad(x, (0, 3, 0, 2), mode="reflect"))


def test_bad_inputs_give_clear_errors():
    ae = SpaceToDepthAutoencoder(4)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        ae.encode(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="48"):
        ae.decode(torch.rand(1, 16, 2, 2))
    with pytest.raises(ValueError, match="exceeds"):
        ae.decode(torch.rand(1, 48, 2, 2), size=(9, 8))


def save_tiny_vae(folder, latent_channels: int, scaling: float, shift: float | None) -> AutoencoderKL:
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32,
        scaling_factor=scaling, shift_factor=shift,
    )
    vae.save_pretrained(folder / "vae")
    return vae


def test_sd35_style_vae_round_trip_applies_scale_and_shift(tmp_path):
    vae = save_tiny_vae(tmp_path, 16, 1.5305, 0.0609)
    ae = build_kl_autoencoder(str(tmp_path))
    assert isinstance(ae, KLAutoencoder)
    assert (ae.latent_channels, ae.stride, ae.scaling_factor, ae.shift_factor) == (16, 4, 1.5305, 0.0609)
    x = images(2, 30, 21)
    z = ae.encode(x)
    assert z.shape == (2, 16, 8, 6)
    with torch.no_grad():
        padded = F.pad(x, (0, 3, 0, 2), mode="reflect")
        raw = vae.encode(padded * 2 - 1).latent_dist.mode()
        assert torch.allclose(z, (raw - 0.0609) * 1.5305, atol=1e-5)
        out = ae.decode(z, size=(30, 21))
        ref = ((vae.decode(z / 1.5305 + 0.0609).sample + 1) / 2).clamp(0, 1)[..., :30, :21]
    assert out.shape == x.shape and torch.allclose(out, ref, atol=1e-5)
    assert 0 <= out.min() and out.max() <= 1


def test_sd15_style_vae_has_no_shift_and_stays_frozen(tmp_path):
    save_tiny_vae(tmp_path, 4, 0.18215, None)
    ae = build_kl_autoencoder(str(tmp_path))
    assert (ae.latent_channels, ae.scaling_factor, ae.shift_factor) == (4, 0.18215, 0.0)
    ae.train()
    assert not ae.training and not ae.vae.training
    assert not any(p.requires_grad for p in ae.parameters())
    assert ae.encode(images(1, 16, 16)).shape == (1, 4, 4, 4)


def test_posterior_sampling_is_optional(tmp_path):
    save_tiny_vae(tmp_path, 4, 0.18215, None)
    x = images(1, 16, 16)
    mean_ae = build_kl_autoencoder(str(tmp_path))
    sample_ae = build_kl_autoencoder(str(tmp_path), sample_posterior=True)
    assert torch.equal(mean_ae.encode(x), mean_ae.encode(x))  # deterministic by default
    assert not torch.equal(sample_ae.encode(x), mean_ae.encode(x))
