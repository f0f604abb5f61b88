"""The noise-prediction (diffusion) restorer of the SD1.5 ablation, and its convention in one place.

SD1.5 is a DDPM-trained UNet; the paper's SD1.5 row uses it as such: a conditional diffusion model
of the clean latent given the degraded one (``z_lq`` concatenated on the channels, InstructPix2Pix
style) and the assessment (cross-attention on ``Condition.prompt_embeds``, SD1.5: CLIP-L 77 x 768).

* Schedule: diffusers' ``DDPMScheduler`` with SD1.5's betas (``scaled_linear``, 0.00085 to 0.012, 1000
  steps) for training; ``epsilon`` or ``v_prediction`` (:class:`NoiseSchedule`).
* Training (:class:`DiffusionPath`): ``k`` uniform in ``[0, N)`` as in DDPM training (the stage's
  ``t``, drawn for flow paths, is replaced by ``t(k)``), ``x_k = add_noise(z_hq, eps, k)``, target
  ``eps`` (epsilon) or ``get_velocity(z_hq, eps, k)`` (v), MSE.
* Sampling (:meth:`DiffusionUIR.sample`): diffusers' ``DDIMScheduler`` (eta 0) from the same betas,
  ``trailing`` timestep spacing and ``set_alpha_to_one=True`` (ours: the first step starts at the
  noisiest timestep, which a pure-noise start needs at few steps, and the last returns the predicted
  clean latent), from the round's seeded noise (:mod:`rar.uir.noise`).
* Time: RAR's ``t`` in ``[0, 1]`` (0 = the noise start, 1 = clean) maps to the DDPM timestep
  ``k = min(floor((1 - t) N), N - 1)`` (:meth:`NoiseSchedule.timestep`) and back as
  ``t = 1 - (k + 1/2) / N`` (:meth:`NoiseSchedule.time`); hooks see ``t(k)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel

from rar.conditioning.condition import Condition
from rar.uir.backbones import SD15UIR, build_sd15_unet
from rar.uir.flow import PathSample
from rar.uir.sampler import ConditionHook

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class NoiseSchedule:
    """A DDPM noise schedule and what the model predicts (defaults: SD1.5's ``scheduler_config.json``).

    Attributes:
        prediction_type: ``"epsilon"`` (SD1.5) or ``"v_prediction"``.
        num_train_timesteps, beta_schedule, beta_start, beta_end: diffusers' DDPM betas.
    """

    prediction_type: str = "epsilon"
    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}")

    @classmethod
    def of(cls, value: NoiseSchedule | dict | None) -> NoiseSchedule:
        if value is None:
            return cls()
        return value if isinstance(value, NoiseSchedule) else cls(**value)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def _betas(self) -> dict:
        return {"num_train_timesteps": self.num_train_timesteps, "beta_schedule": self.beta_schedule,
                "beta_start": self.beta_start, "beta_end": self.beta_end, "prediction_type": self.prediction_type}

    def training(self) -> DDPMScheduler:
        """The training scheduler (``add_noise``, ``get_velocity``)."""
        return DDPMScheduler(**self._betas(), clip_sample=False)

    def sampler(self) -> DDIMScheduler:
        """A fresh deterministic sampler (DDIM, eta 0) over the same betas."""
        return DDIMScheduler(**self._betas(), clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")

    def timestep(self, t: torch.Tensor) -> torch.Tensor:
        """RAR time ``t [B]`` in ``[0, 1]`` → DDPM timestep ``k [B]`` (long; ``t = 0`` is the noisiest)."""
        n = self.num_train_timesteps
        return ((1 - t.float()) * n).floor().clamp(0, n - 1).long()

    def time(self, k: torch.Tensor) -> torch.Tensor:
        """DDPM timestep ``k`` → the RAR time at the middle of its bin (``timestep(time(k)) == k``)."""
        return 1 - (k.float() + 0.5) / self.num_train_timesteps


class DiffusionPath:
    """Training targets of the diffusion restorer: noise ``z_hq`` to timestep ``k(t)``, predict
    ``eps`` or ``v`` (the :class:`NoiseSchedule`'s ``prediction_type``); ``z_lq`` is concatenated."""

    concat_lq = True

    def __init__(self, schedule: NoiseSchedule | dict | None = None) -> None:
        self.schedule = NoiseSchedule.of(schedule)
        self._scheduler = self.schedule.training()

    def sample(
        self, z_lq: torch.Tensor, z_hq: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> PathSample:
        """``k`` uniform in ``[0, N)`` (``t`` only gives the batch size: DDPM's timesteps are uniform),
        ``x_t`` = ``z_hq`` noised to ``k``; ``target`` = ``eps`` or ``v`` (not a velocity in ``t``);
        the returned ``t`` is ``t(k)``."""
        if z_lq.shape != z_hq.shape:
            raise ValueError(f"z_lq {tuple(z_lq.shape)} and z_hq {tuple(z_hq.shape)} must have the same shape")
        k = torch.randint(self.schedule.num_train_timesteps, t.shape, generator=generator,
                          device=z_hq.device if generator is None else generator.device)
        k = k.to(z_hq.device)
        eps = self.source(z_lq, generator)
        x_t = self._scheduler.add_noise(z_hq, eps, k)
        target = eps if self.schedule.prediction_type == "epsilon" else self._scheduler.get_velocity(z_hq, eps, k)
        return PathSample(x_t=x_t, t=self.schedule.time(k).to(t.dtype), target=target, z_lq=z_lq)

    def source(self, z_lq: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh Gaussian noise shaped like ``z_lq``."""
        return torch.randn(z_lq.shape, generator=generator, device=z_lq.device, dtype=z_lq.dtype)


class DiffusionUIR(SD15UIR):
    """An SD1.5 ``UNet2DConditionModel`` as a noise-prediction restorer (input ``[x_k, z_lq]``).

    ``forward(x_t, t, cond, z_lq)`` returns the schedule's prediction (``eps`` or ``v``) at
    timestep ``k(t)`` — the training target of :class:`DiffusionPath`, not a velocity;
    :meth:`sample` runs the DDIM sampler. Always ``concat_lq=True`` (a noise start).
    """

    def __init__(self, backbone: UNet2DConditionModel, schedule: NoiseSchedule | dict | None = None) -> None:
        super().__init__(backbone, concat_lq=True)
        self.schedule = NoiseSchedule.of(schedule)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, z_lq: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Prediction ``[B, C, h, w]`` at ``x_t [B, C, h, w]``, ``t [B]`` in ``[0, 1]``, given ``z_lq``."""
        if t.shape != (x_t.shape[0],):
            raise ValueError(f"DiffusionUIR expects t of shape [{x_t.shape[0]}], got {tuple(t.shape)}")
        return self.predict(x_t, self.schedule.timestep(t).to(x_t.device), cond, z_lq)

    def predict(self, x: torch.Tensor, k: torch.Tensor, cond: Condition, z_lq: torch.Tensor | None) -> torch.Tensor:
        """The UNet's prediction at DDPM timesteps ``k [B]`` (long)."""
        if x.ndim != 4 or x.shape[1] != self.latent_channels:
            raise ValueError(f"DiffusionUIR expects x [B, {self.latent_channels}, h, w], got {tuple(x.shape)}")
        if z_lq is None or z_lq.shape != x.shape:
            raise ValueError(f"DiffusionUIR needs z_lq shaped like x {tuple(x.shape)}, got "
                             f"{None if z_lq is None else tuple(z_lq.shape)}")
        self._check_condition(cond, x.shape[0])
        dtype = self.backbone.dtype
        out = self.backbone(torch.cat([x, z_lq.to(x.dtype)], dim=1).to(dtype), k,
                            encoder_hidden_states=cond.prompt_embeds.to(dtype), return_dict=False)[0]
        return out.to(x.dtype)

    def sample(
        self,
        start: torch.Tensor,
        cond: Condition,
        steps: int,
        method: str = "euler",
        z_lq: torch.Tensor | None = None,
        hook: ConditionHook | None = None,
        hook_every: int | None = None,
    ) -> torch.Tensor:
        """DDIM from the noise ``start [B, C, h, w]`` in ``steps`` steps given ``z_lq``; ``method``
        (the flow samplers') does not apply. ``hook(x, t, i)`` may refresh the condition before
        step ``i`` for ``i`` in ``hook_every, 2 hook_every, ...``. Returns the clean latent."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if hook is not None and (hook_every is None or hook_every < 1):
            raise ValueError(f"a hook needs hook_every >= 1, got {hook_every}")
        scheduler = self.schedule.sampler()
        scheduler.set_timesteps(steps, device=start.device)
        x = start * scheduler.init_noise_sigma
        for i, k in enumerate(scheduler.timesteps):
            if hook is not None and i > 0 and i % hook_every == 0:
                refreshed = hook(x, float(self.schedule.time(k)), i)
                if refreshed is not None:
                    cond = refreshed
            pred = self.predict(x, k.expand(x.shape[0]), cond, z_lq)
            x = scheduler.step(pred, k, x, eta=0.0).prev_sample
        return x


def build_sd15_diffusion(
    pretrained: str | None = None,
    config: str | dict | None = "sd15",
    subfolder: str | None = "unet",
    schedule: NoiseSchedule | dict | None = None,
    gradient_checkpointing: bool = False,
    torch_dtype: str | None = None,
) -> DiffusionUIR:
    """The SD1.5 UNet (:func:`rar.uir.backbones.build_sd15_unet`, input widened to ``[x_k, z_lq]``
    with zero weights for ``z_lq``) as a :class:`DiffusionUIR` with ``schedule``."""
    unet = build_sd15_unet(pretrained, config, subfolder, concat_lq=True,
                           gradient_checkpointing=gradient_checkpointing, torch_dtype=torch_dtype)
    return DiffusionUIR(unet.backbone, schedule)
