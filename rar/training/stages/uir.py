"""Training stage ``uir``: flow matching of the restorer from degraded to clean latents.

One step: encode LQ and HQ with the frozen autoencoder (no grad), sample ``t``, build the path
(noise-free by default: ``x_t = (1-t) z_lq + t z_hq``, target ``z_hq - z_lq``), get the condition
from the injected condition source, predict the velocity, return the (SD3-weighted) MSE.
Which parameters train (UIR, text adapter, both) is the phases' business (``configs/stage/uir.yaml``).

Own rounds (``own_round_share > 0``, ours, not in the paper): for that share of each batch the
path starts at the model's own one-round restoration of ``z_lq`` (no grad, under the item's
condition) instead of at ``z_lq``, with the same clean target, and trains under a random batch
item's condition. Inference repeats the round on its own output, which a UIR taught only on
``z_lq -> z_hq`` never sees: it applies the whole correction again and over-restores. And after a
round the LQA's answer is often wrong (it names a present degradation far less often than in
round 1), so a restored latent must not be restored again for whatever it is told. Measured in
docs/experiments.md.

Wrong conditions (``wrong_share > 0``, ours): that share of the remaining items, which start at
``z_lq``, also train under another random batch item's condition, with their own clean target. At
inference the LQA's answer is wrong on part of round 1 too (it names a degradation the image does
not have, or misses one); a UIR that has only seen right answers trusts them and restores what it
is told, while this one learns to restore what the latent shows when the text disagrees with it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import torch
from torchvision.utils import make_grid

from rar.conditioning.condition import Condition
from rar.conditioning.sources import ConditionInputs, ConditionSource
from rar.training.stage import Stage, StepOutput, first_batch, same_size_pair
from rar.uir import flow
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel
from rar.uir.noise import image_seeds, start_noise
from rar.uir.round import restore_round
from rar.utils.image_io import save_image


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR ``[B]`` in dB of images ``[B, 3, H, W]`` in ``[0, 1]``, capped at 100 dB."""
    mse = ((a.float() - b.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1 / mse)


class UIRStage(Stage):
    """The ``uir`` stage. Children: ``autoencoder``, ``uir`` and the condition source's modules.

    Args:
        autoencoder: frozen image ↔ latent autoencoder.
        uir: the velocity model (``uir(x_t, t, cond, z_lq=None) -> v``).
        condition: where the condition comes from (:mod:`rar.conditioning.sources`); the modules
            it ``requires`` must be among this stage's children.
        path: :class:`rar.uir.flow.NoiseFreePath` (default) or ``NoisyConditionalPath`` (ablation;
            needs a UIR built with ``concat_lq=True``), or :class:`rar.uir.diffusion.DiffusionPath`
            for a :class:`rar.uir.diffusion.DiffusionUIR` (same schedule).
        timestep_sampling, logit_mean, logit_std, mode_scale: training-time density
            (:func:`rar.uir.flow.sample_timesteps`).
        loss_weighting: ``none`` | ``sigma_sqrt`` | ``cosmap`` (:func:`rar.uir.flow.loss_weighting`).
        val_dataset: dataset whose first ``val_samples`` items are restored by :meth:`validate`
            (collated with its ``collate`` method); None disables validation.
        val_steps, val_method: integration used by :meth:`validate`.
        own_round_share: share of each batch that starts from the model's own round (see the
            module docstring); 0 = the paper's ``z_lq -> z_hq`` only. Noise-free paths only.
        own_round_steps: Euler steps of that round (the loop's ``steps_per_round``).
        wrong_share: share of the items starting at ``z_lq`` that train under a random batch item's
            condition (module docstring); 0 = always their own.
        **modules: further children named after their config group (``conditioner``, ``lqa``,
            ``text_adapter``...).
    """

    def __init__(
        self,
        autoencoder: LatentAutoencoder,
        uir: UIRModel,
        condition: ConditionSource,
        path: flow.FlowPath | None = None,
        timestep_sampling: str = "logit_normal",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        mode_scale: float = 1.29,
        loss_weighting: str = "none",
        val_dataset: torch.utils.data.Dataset | None = None,
        val_samples: int = 4,
        val_steps: int = 4,
        val_method: str = "euler",
        own_round_share: float = 0.0,
        own_round_steps: int = 4,
        wrong_share: float = 0.0,
        **modules: torch.nn.Module,
    ) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.uir = uir
        for name, module in modules.items():
            if not isinstance(module, torch.nn.Module):
                raise TypeError(f"UIRStage module {name!r} must be an nn.Module, got {type(module).__name__}")
            self.add_module(name, module)
        missing = [m for m in condition.requires if m not in self._modules]
        if missing:
            raise ValueError(
                f"condition source {type(condition).__name__} needs stage modules {missing}; "
                f"this stage has {list(self._modules)} (add them to stage.modules)"
            )
        self.path = path if path is not None else flow.NoiseFreePath()
        if self.path.concat_lq != uir.concat_lq:
            raise ValueError(
                f"{type(self.path).__name__} (concat_lq={self.path.concat_lq}) needs a UIR built with "
                f"concat_lq={self.path.concat_lq}, got concat_lq={uir.concat_lq}"
            )
        if getattr(self.path, "schedule", None) != getattr(uir, "schedule", None):
            raise ValueError(
                f"{type(self.path).__name__} and {type(uir).__name__} disagree on the noise schedule "
                f"({getattr(self.path, 'schedule', None)} vs {getattr(uir, 'schedule', None)}): a diffusion UIR trains "
                "on DiffusionPath(schedule=uir.schedule), a flow UIR on a flow path"
            )
        if uir.latent_channels != autoencoder.latent_channels:
            raise ValueError(
                f"UIR works on {uir.latent_channels}-channel latents but the autoencoder "
                f"{type(autoencoder).__name__} makes {autoencoder.latent_channels}"
            )
        if timestep_sampling not in flow.TIMESTEP_SCHEMES:
            raise ValueError(f"timestep_sampling must be one of {flow.TIMESTEP_SCHEMES}, got {timestep_sampling!r}")
        if loss_weighting not in flow.LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {flow.LOSS_WEIGHTINGS}, got {loss_weighting!r}")
        for name, share in (("own_round_share", own_round_share), ("wrong_share", wrong_share)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {share}")
        if own_round_share > 0 and uir.concat_lq:
            raise ValueError("own_round_share needs a noise-free UIR (its round starts at z_lq); this one "
                             "starts from noise (concat_lq=True)")
        if own_round_steps < 1:
            raise ValueError(f"own_round_steps must be >= 1, got {own_round_steps}")
        self.own_round_share, self.own_round_steps = own_round_share, own_round_steps
        self.wrong_share = wrong_share
        self.condition = condition
        self.timestep_kwargs = dict(
            scheme=timestep_sampling, logit_mean=logit_mean, logit_std=logit_std, mode_scale=mode_scale
        )
        self.loss_weighting = loss_weighting
        self.val_dataset, self.val_samples = val_dataset, val_samples
        self.val_steps, self.val_method = val_steps, val_method
        self._val_batch = None

    def modules_by_name(self) -> dict[str, torch.nn.Module]:
        """The stage's children by config-group name (what condition sources read)."""
        return dict(self.named_children())

    def _device(self) -> torch.device:
        return next(self.uir.parameters()).device

    def _pair(self, batch) -> tuple[torch.Tensor, torch.Tensor, Sequence | None]:
        lq, hq = same_size_pair(batch, "uir", self._device())
        return lq, hq, getattr(batch, "labels", None)

    def forward(self, batch) -> StepOutput:
        """One step on a ``RestorationBatch`` (anything with ``lq``, ``hq``, ``labels``)."""
        lq, hq, labels = self._pair(batch)
        with torch.no_grad():
            z_lq, z_hq = self.autoencoder.encode(lq), self.autoencoder.encode(hq)
        cond = self.condition(self.modules_by_name(), ConditionInputs(z_lq, labels))
        z_start, cond = self.training_starts(z_lq, cond)
        t = flow.sample_timesteps(z_hq.shape[0], device=z_hq.device, **self.timestep_kwargs)
        sample = self.path.sample(z_start, z_hq, t)
        v = self.uir(sample.x_t, sample.t, cond, z_lq=sample.z_lq)
        loss = flow.flow_matching_loss(v, sample.target, flow.loss_weighting(self.loss_weighting, t))
        return StepOutput(loss=loss)

    def training_starts(self, z_lq: torch.Tensor, cond: Condition) -> tuple[torch.Tensor, Condition]:
        """Flow starts and training conditions: the last ``n = round(own_round_share * B)`` items start
        at the model's own round from ``z_lq`` and take the condition of a random batch item; of the
        others, which start at ``z_lq``, the first ``round(wrong_share * (B - n))`` take the training
        condition of a random batch item, the rest their own. The batch is shuffled, so which items
        does not matter."""
        b = z_lq.shape[0]
        n = round(self.own_round_share * b)
        m = round(self.wrong_share * (b - n))
        z_start, pick = z_lq, torch.arange(b)
        if n:
            with torch.no_grad():
                own = restore_round(self.uir, z_lq[-n:], cond.index(slice(-n, None)), self.own_round_steps)
            z_start = torch.cat([z_lq[:-n], own])
            pick[-n:] = torch.randint(0, b, (n,))
        if m:
            pick[:m] = pick[torch.randint(0, b, (m,))]
        return z_start, (cond.index(pick.to(z_lq.device)) if n or m else cond)

    @torch.no_grad()
    def restore(self, lq: torch.Tensor, labels: Sequence | None, steps: int, method: str = "euler") -> torch.Tensor:
        """Restore ``lq [B, 3, H, W]`` in ``[0, 1]`` in one integration ``t: 0 -> 1``; same size out."""
        z_lq = self.autoencoder.encode(lq)
        cond: Condition = self.condition(self.modules_by_name(), ConditionInputs(z_lq, labels))
        noise = start_noise(z_lq, image_seeds(lq, 0), 1) if self.uir.concat_lq else None  # seed 0, round 1
        z = restore_round(self.uir, z_lq, cond, steps, method, noise)
        return self.autoencoder.decode(z, size=lq.shape[-2:])

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        """Restore the first ``val_samples`` validation pairs; write ``out_dir/restored.png``
        (rows: LQ | restored | HQ) and return mean PSNR of the restored and of the input images."""
        if self.val_dataset is None:
            return {}
        if self._val_batch is None:
            self._val_batch = first_batch(self.val_dataset, self.val_samples)
        lq, hq, labels = self._pair(self._val_batch)
        restored = self.restore(lq, labels, self.val_steps, self.val_method)
        grid = make_grid(torch.stack([lq, restored, hq], dim=1).flatten(0, 1), nrow=3, padding=2, pad_value=1.0)
        save_image(grid, pathlib.Path(out_dir) / "restored.png", overwrite=True)
        return {"psnr": psnr(restored, hq).mean().item(), "psnr_input": psnr(lq, hq).mean().item()}
