"""The input's detail handed back to the decoded output (rar.pipeline.input_detail)."""

import pytest
import torch

from rar.pipeline.input_detail import input_detail, noise_sigma


def _noisy(sigma: float, seed: int = 0, shape=(2, 3, 64, 64)) -> torch.Tensor:
    return sigma * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_noise_sigma_reads_the_noise_level_and_ignores_sparse_structure(sigma):
    noise = _noisy(sigma)
    assert noise_sigma(noise) == pytest.approx(torch.full((2,), sigma), rel=0.1)
    streaks = noise.clone()
    streaks[..., ::9, :] += 0.8  # bright lines on every 9th row: strong, sparse structure
    assert noise_sigma(streaks) == pytest.approx(torch.full((2,), sigma), rel=0.2)


def test_a_noise_residual_is_shrunk_away_and_a_structured_one_kept():
    clean = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    noise = _noisy(0.05)
    # the reconstruction lost only noise: almost nothing comes back
    assert input_detail(clean + noise, clean).square().mean() < 0.1 * noise.square().mean()
    # the reconstruction lost thin streaks (amplitude 0.5, far above the noise): they come back
    streaks = torch.zeros_like(clean)
    streaks[..., ::8, :] = 0.5
    back = input_detail(clean + streaks + noise, clean)
    assert (back * streaks).sum() > 0.9 * streaks.square().sum()
    # nothing lost, nothing added; shapes are checked
    assert input_detail(clean, clean).abs().max() == 0
    with pytest.raises(ValueError, match="one shape"):
        input_detail(clean, clean[..., :32])
    with pytest.raises(ValueError, match="odd"):
        input_detail(clean, clean, kernel=4)


def test_the_loop_adds_the_detail_of_its_input_to_what_it_decodes(tiny_dir):
    from rar.pipeline.config import LoopConfig
    from rar.pipeline.geometry import pad_to_multiple
    from rar.testing import build_tiny_rar_pipeline

    pipe = build_tiny_rar_pipeline(tiny_dir / "depictqa", LoopConfig(max_rounds=1, steps_per_round=1, stop="fixed"),
                                   uir_layers=1, max_new_tokens=3)
    lq = torch.rand(2, 3, 18, 22, generator=torch.Generator().manual_seed(0))
    result = pipe(lq, return_latents=True)
    plain = pipe.with_config(input_detail=False)(lq, return_latents=True)
    assert plain.detail is None
    z = torch.stack([t.rounds[0].latent for t in plain.trajectories])
    decoded = pipe.autoencoder.decode(z, size=(18, 22))
    reconstruction = pipe.autoencoder.decode(pipe.autoencoder.encode(pad_to_multiple(lq, pipe.stride)), size=(18, 22))
    torch.testing.assert_close(plain.images, decoded.clamp(0, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(result.detail, input_detail(lq, reconstruction), atol=1e-6, rtol=0)
    torch.testing.assert_close(result.images, (decoded + result.detail).clamp(0, 1), atol=1e-6, rtol=0)
