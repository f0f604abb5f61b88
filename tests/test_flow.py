"""Flow convention, timestep density, loss weights and the ODE sampler, on analytic fields."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3

from rar.conditioning.condition import Condition
from rar.uir import flow
from rar.uir.sampler import integrate

B, C, H, W = 3, 4, 5, 6


@pytest.fixture
def latents():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, C, H, W, generator=g), torch.randn(B, C, H, W, generator=g)


def cond(value: float = 1.0, batch: int = B) -> Condition:
    return Condition(torch.zeros(batch, 2, 8), torch.full((batch, 1), value))


def test_noise_free_path_endpoints_and_target(latents):
    z_lq, z_hq = latents
    path = flow.NoiseFreePath()
    start = path.sample(z_lq, z_hq, torch.zeros(B))
    end = path.sample(z_lq, z_hq, torch.ones(B))
    assert torch.equal(start.x_t, z_lq) and torch.equal(end.x_t, z_hq)
    assert torch.equal(start.target, z_hq - z_lq) and start.z_lq is None
    assert path.source(z_lq) is z_lq
    mid = path.sample(z_lq, z_hq, torch.tensor([0.25, 0.5, 0.75]))
    assert torch.allclose(mid.x_t[1], 0.5 * (z_lq[1] + z_hq[1]))
    # moving along the target velocity from x_t for the remaining time lands on z_hq
    assert torch.allclose(mid.x_t + (1 - mid.t).view(-1, 1, 1, 1) * mid.target, z_hq, atol=1e-6)


def test_noisy_path_starts_at_noise_and_carries_z_lq(latents):
    z_lq, z_hq = latents
    path = flow.NoisyConditionalPath()
    s0 = path.sample(z_lq, z_hq, torch.zeros(B), generator=torch.Generator().manual_seed(1))
    eps = torch.randn(z_lq.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s0.x_t, eps) and torch.equal(s0.target, z_hq - eps) and s0.z_lq is z_lq
    s1 = path.sample(z_lq, z_hq, torch.ones(B))
    assert torch.equal(s1.x_t, z_hq)


def test_path_rejects_bad_shapes(latents):
    z_lq, z_hq = latents
    with pytest.raises(ValueError, match="same shape"):
        flow.NoiseFreePath().sample(z_lq, z_hq[:, :2], torch.zeros(B))
    with pytest.raises(ValueError, match="shape"):
        flow.NoiseFreePath().sample(z_lq, z_hq, torch.zeros(B + 1))


@pytest.mark.parametrize("scheme", ["logit_normal", "uniform", "mode"])
def test_timestep_sampling_matches_diffusers(scheme):
    u = compute_density_for_timestep_sampling(
        scheme, 4096, logit_mean=0.0, logit_std=1.0, mode_scale=1.29, generator=torch.Generator().manual_seed(3)
    )
    t = flow.sample_timesteps(4096, scheme, 0.0, 1.0, 1.29, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(t, 1 - u)
    assert t.min() >= 0 and t.max() <= 1
    if scheme in ("logit_normal", "uniform"):  # both symmetric around 1/2
        assert abs(t.mean().item() - 0.5) < 0.02
    with pytest.raises(ValueError, match="timestep scheme"):
        flow.sample_timesteps(2, "cosine")


@pytest.mark.parametrize("scheme", ["none", "sigma_sqrt", "cosmap"])
def test_loss_weighting_matches_diffusers(scheme):
    t = torch.tensor([0.1, 0.3, 0.5, 0.8])
    expected = compute_loss_weighting_for_sd3(scheme, sigmas=1 - t)
    assert torch.allclose(flow.loss_weighting(scheme, t), expected)


def test_loss_weighting_rejects_unknown():
    with pytest.raises(ValueError, match="loss weighting"):
        flow.loss_weighting("sqrt", torch.zeros(1))


def test_flow_matching_loss_is_weighted_per_sample_mse(latents):
    pred, target = latents
    per_sample = ((pred - target) ** 2).flatten(1).mean(1)
    w = torch.tensor([1.0, 2.0, 0.0])
    assert torch.allclose(flow.flow_matching_loss(pred, target), per_sample.mean())
    assert torch.allclose(flow.flow_matching_loss(pred, target, w), (w * per_sample).mean())
    with pytest.raises(ValueError, match="shape"):
        flow.flow_matching_loss(pred, target[:, :1])


def test_sigma_conversion_matches_scheduler_step(latents):
    """One diffusers Euler step (sigma s0 -> s1, model_output = v_sd3) equals one of ours (t0 -> t1)."""
    x, v = latents
    s0, s1 = 0.8, 0.35
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(sigmas=[s0, s1])
    assert torch.allclose(scheduler.sigmas, torch.tensor([s0, s1, 0.0]))
    t0, t1 = flow.from_sigma(torch.tensor(s0)), flow.from_sigma(torch.tensor(s1))
    assert torch.allclose(scheduler.timesteps[0], flow.to_sd3_timestep(t0))
    theirs = scheduler.step(flow.velocity_to_sd3(v), scheduler.timesteps[0], x).prev_sample
    ours = integrate(lambda x_t, t, c, z_lq=None: v, x, cond(), steps=1, t0=t0.item(), t1=t1.item()).latent
    assert torch.allclose(theirs, ours, atol=1e-6)
    assert torch.equal(flow.velocity_from_sd3(flow.velocity_to_sd3(v)), v)


def test_training_path_matches_scheduler_scale_noise(latents):
    """diffusers' forward process with `noise` = our path source is our x_t at t = 1 - sigma."""
    z_lq, z_hq = latents
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(sigmas=[0.9, 0.6, 0.2])
    timestep = scheduler.timesteps[1:2].repeat(B)
    theirs = scheduler.scale_noise(z_hq, timestep, noise=z_lq)
    ours = flow.NoiseFreePath().sample(z_lq, z_hq, torch.full((B,), 0.4))
    assert torch.allclose(theirs, ours.x_t, atol=1e-6)
    # diffusers' training target is noise - data = -(our target)
    assert torch.equal(flow.velocity_to_sd3(ours.target), z_lq - z_hq)


def test_euler_is_exact_for_constant_field(latents):
    x0, c = latents
    model = lambda x, t, cond, z_lq=None: c  # noqa: E731
    out = integrate(model, x0, cond(), steps=3, t0=0.2, t1=0.9, keep_intermediates=True)
    assert torch.allclose(out.latent, x0 + 0.7 * c, atol=1e-6)
    assert len(out.intermediates) == 4 and out.intermediates[0] is x0
    assert torch.allclose(out.times, torch.tensor([0.2, 0.4333333, 0.6666667, 0.9]))


def test_heun_is_exact_for_linear_in_t_field(latents):
    a, b = latents
    x0 = torch.zeros_like(a)
    model = lambda x, t, cond, z_lq=None: a + b * t.view(-1, 1, 1, 1)  # noqa: E731
    t0, t1 = 0.1, 0.85
    exact = a * (t1 - t0) + b * (t1**2 - t0**2) / 2
    heun = integrate(model, x0, cond(), steps=2, t0=t0, t1=t1, method="heun").latent
    euler = integrate(model, x0, cond(), steps=2, t0=t0, t1=t1, method="euler").latent
    assert torch.allclose(heun, exact, atol=1e-6)
    assert not torch.allclose(euler, exact, atol=1e-3)  # Euler is not exact here: the test can fail


def test_hook_replaces_condition_every_k_steps(latents):
    x0, _ = latents
    calls = []

    def model(x, t, c, z_lq=None):  # velocity = the condition's pooled value
        return c.pooled[:, :1, None, None].expand_as(x)

    def hook(x, t, step):
        calls.append((step, round(t, 6)))
        return cond(3.0) if step == 2 else None

    out = integrate(model, x0, cond(1.0), steps=4, hook=hook, hook_every=2)
    assert calls == [(2, 0.5)]
    assert torch.allclose(out.latent, x0 + 0.5 * 1.0 + 0.5 * 3.0)
    assert out.condition.pooled[0, 0] == 3.0


def test_sampler_passes_z_lq_and_rejects_bad_arguments(latents):
    x0, z_lq = latents
    seen = []
    model = lambda x, t, c, z_lq=None: seen.append(z_lq) or torch.zeros_like(x)  # noqa: E731
    integrate(model, x0, cond(), steps=2, z_lq=z_lq)
    assert all(z is z_lq for z in seen) and len(seen) == 2
    with pytest.raises(ValueError, match="steps"):
        integrate(model, x0, cond(), steps=0)
    with pytest.raises(ValueError, match="method"):
        integrate(model, x0, cond(), steps=1, method="rk4")
    with pytest.raises(ValueError, match="hook_every"):
        integrate(model, x0, cond(), steps=1, hook=lambda *a: None)
