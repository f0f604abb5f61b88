"""The flow convention of RAR — the one place that defines it.

Time runs from the degraded latent to the clean one: ``t = 0`` is degraded, ``t = 1`` clean.

* Noise-free path (RAR): ``x_t = (1 - t) z_lq + t z_hq``, target velocity ``v = z_hq - z_lq``.
* Noisy conditional path (ablation, InstructPix2Pix style): ``x_t = (1 - t) eps + t z_hq``,
  ``v = z_hq - eps``, and ``z_lq`` is concatenated to ``x_t`` on the channel axis.
* Euler step: ``x_{t+dt} = x_t + dt * v``.

diffusers' SD3 code (``FlowMatchEulerDiscreteScheduler``, ``train_dreambooth_sd3.py``) writes the
same straight path as ``x = (1 - sigma) x_data + sigma x_source`` with target ``x_source - x_data``.
Mapping its data to our ``t = 1`` end gives ``sigma = 1 - t`` and ``v_sd3 = -v``; the transformer's
``timestep`` argument is ``sigma * 1000`` (the scheduler's ``timesteps = sigmas *
num_train_timesteps``). :func:`to_sd3_timestep`, :func:`velocity_to_sd3` and
:func:`velocity_from_sd3` are the only conversions; ``tests/test_flow.py`` checks them against the
scheduler's own ``step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NUM_TRAIN_TIMESTEPS = 1000
"""diffusers' ``num_train_timesteps`` for SD3: the transformer sees ``timestep = sigma * 1000``."""

TIMESTEP_SCHEMES = ("logit_normal", "uniform", "mode")
LOSS_WEIGHTINGS = ("none", "sigma_sqrt", "cosmap")


@dataclass
class PathSample:
    """A point on a conditional probability path and what the model must predict there.

    Attributes:
        x_t: ``[B, C, h, w]`` latent at time ``t``.
        t: ``[B]`` float in ``[0, 1]``; 0 is the start (degraded / noise), 1 the clean latent.
        target: ``[B, C, h, w]`` target velocity ``dx_t/dt`` (our convention, not diffusers').
        z_lq: ``[B, C, h, w]`` degraded latent to concatenate to the model input on channels, or
            ``None`` when the path itself starts at the degraded latent (noise-free path).
    """

    x_t: torch.Tensor
    t: torch.Tensor
    target: torch.Tensor
    z_lq: torch.Tensor | None = None


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t [B]`` reshaped to broadcast against ``like [B, ...]``."""
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"expected t of shape [B={like.shape[0]}], got {tuple(t.shape)}")
    return t.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def straight(
    source: torch.Tensor, z_hq: torch.Tensor, t: torch.Tensor, z_lq: torch.Tensor | None = None
) -> PathSample:
    """The straight path from ``source`` (``t = 0``) to ``z_hq`` (``t = 1``):
    ``x_t = (1 - t) source + t z_hq``, target ``z_hq - source``; ``z_lq`` rides along for the
    noisy path's channel concatenation (None for the noise-free path, whose source is ``z_lq``)."""
    if source.shape != z_hq.shape:
        raise ValueError(f"path source {tuple(source.shape)} and z_hq {tuple(z_hq.shape)} must have the same shape")
    tt = _expand(t, z_hq)
    return PathSample(x_t=(1 - tt) * source + tt * z_hq, t=t, target=z_hq - source, z_lq=z_lq)


class NoiseFreePath:
    """RAR's path: straight from the degraded latent to the clean one, no noise anywhere."""

    concat_lq = False

    def sample(
        self, z_lq: torch.Tensor, z_hq: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> PathSample:
        """``x_t = (1 - t) z_lq + t z_hq``, target ``z_hq - z_lq`` (``generator`` unused: no noise)."""
        return straight(z_lq, z_hq, t)

    def source(self, z_lq: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Where integration starts at ``t = 0``: the degraded latent itself."""
        return z_lq


class NoisyConditionalPath:
    """Ablation: standard conditional flow matching from Gaussian noise, ``z_lq`` on channels."""

    concat_lq = True

    def sample(
        self, z_lq: torch.Tensor, z_hq: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> PathSample:
        """``x_t = (1 - t) eps + t z_hq``, target ``z_hq - eps``; ``eps ~ N(0, I)``."""
        if z_lq.shape != z_hq.shape:
            raise ValueError(f"z_lq {tuple(z_lq.shape)} and z_hq {tuple(z_hq.shape)} must have the same shape")
        return straight(self.source(z_lq, generator), z_hq, t, z_lq=z_lq)

    def source(self, z_lq: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh Gaussian noise shaped like ``z_lq``."""
        return torch.randn(z_lq.shape, generator=generator, device=z_lq.device, dtype=z_lq.dtype)


FlowPath = NoiseFreePath | NoisyConditionalPath


def sample_timesteps(
    batch_size: int,
    scheme: str = "logit_normal",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    mode_scale: float = 1.29,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training times ``t [B]`` in ``[0, 1]`` (our convention).

    Draws ``u`` exactly as diffusers' ``compute_density_for_timestep_sampling`` (same random
    calls, so the same generator gives the same ``u``); diffusers uses ``u`` as ``sigma``, hence
    ``t = 1 - u``. ``logit_normal``: ``u = sigmoid(N(logit_mean, logit_std))`` (symmetric for mean 0);
    ``uniform``: ``u ~ U[0, 1)``; ``mode``: SD3's mode sampling with ``mode_scale``.
    """
    if scheme == "logit_normal":
        u = torch.normal(mean=logit_mean, std=logit_std, size=(batch_size,), device=device, generator=generator)
        u = torch.sigmoid(u)
    elif scheme == "mode":
        u = torch.rand(size=(batch_size,), device=device, generator=generator)
        u = 1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    elif scheme == "uniform":
        u = torch.rand(size=(batch_size,), device=device, generator=generator)
    else:
        raise ValueError(f"timestep scheme must be one of {TIMESTEP_SCHEMES}, got {scheme!r}")
    return 1 - u


def loss_weighting(scheme: str, t: torch.Tensor) -> torch.Tensor:
    """Per-sample loss weights ``[B]``, diffusers' ``compute_loss_weighting_for_sd3`` at ``sigma = 1 - t``.

    ``none``: ones; ``sigma_sqrt``: ``sigma^-2``; ``cosmap``: ``2 / (pi (1 - 2 sigma + 2 sigma^2))``.
    """
    sigma = to_sigma(t)
    if scheme == "sigma_sqrt":
        return (sigma**-2.0).float()
    if scheme == "cosmap":
        return 2 / (math.pi * (1 - 2 * sigma + 2 * sigma**2))
    if scheme == "none":
        return torch.ones_like(sigma)
    raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {scheme!r}")


def flow_matching_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted MSE as in diffusers' SD3 training: mean over pixels, then (weighted) mean over the batch.

    Args:
        pred, target: ``[B, C, h, w]`` velocities (same convention).
        weight: ``[B]`` per-sample weights or ``None`` for uniform.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    err = (pred.float() - target.float()) ** 2
    if weight is not None:
        err = _expand(weight.float(), err) * err
    return err.reshape(err.shape[0], -1).mean(dim=1).mean()


def to_sigma(t: torch.Tensor) -> torch.Tensor:
    """diffusers' noise level ``sigma = 1 - t`` (sigma 1 = the path's source, 0 = clean)."""
    return 1 - t


def from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_sigma`."""
    return 1 - sigma


def to_sd3_timestep(t: torch.Tensor) -> torch.Tensor:
    """The ``timestep`` SD3's transformer expects: ``sigma * 1000`` (float, ``[B]``)."""
    return to_sigma(t) * NUM_TRAIN_TIMESTEPS


def velocity_to_sd3(v: torch.Tensor) -> torch.Tensor:
    """Our velocity ``dx/dt`` to diffusers' ``model_output`` (``dx/dsigma``): ``v_sd3 = -v``."""
    return -v


def velocity_from_sd3(v_sd3: torch.Tensor) -> torch.Tensor:
    """diffusers' ``model_output`` to our velocity: ``v = -v_sd3``."""
    return -v_sd3
