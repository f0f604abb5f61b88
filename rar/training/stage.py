"""The contract between the shared training loop and a training stage.

A stage is an ``nn.Module`` holding the modules it uses as children named after their config
group (``autoencoder``, ``uir``, ``conditioner``, ``lqa``, ``text_adapter``...). The loop wraps the
whole stage with ``accelerator.prepare`` and calls ``stage(batch)`` once per micro-batch; the
stage returns its loss. Which parameters train is decided by the phase's ``trainable`` patterns,
not by the stage, so one stage class serves several phases.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import torch


@dataclass
class StepOutput:
    """What one training step returns.

    Attributes:
        loss: scalar tensor the loop back-propagates.
        logs: extra detached scalars to log (e.g. per-term losses); may be empty.
    """

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Stage(torch.nn.Module):
    """Base class of every training stage: implement :meth:`forward`, optionally :meth:`validate`."""

    def forward(self, batch) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> StepOutput")

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        """Optional periodic validation on the main process; write artefacts under ``out_dir``."""
        return {}

    def export(self, model_dir: pathlib.Path, dataset: torch.utils.data.Dataset) -> None:
        """Optional hand-off beyond ``model/<child>/weights.safetensors``: called on the main process
        after each phase's export with the run's ``model/`` folder and the training dataset (e.g. the
        ``autoencoder`` stage writes a diffusers folder with latent statistics measured on it)."""


def same_size_pair(batch, stage: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lq, hq)`` of a restoration batch on ``device``; an error naming ``stage`` when their
    sizes differ (the flow needs same-size latents)."""
    if batch.lq.shape != batch.hq.shape:
        raise ValueError(f"the {stage} stage needs LQ and HQ of the same size, got {tuple(batch.lq.shape)} and "
                         f"{tuple(batch.hq.shape)} (upsample low-resolution LQ in the dataset)")
    return batch.lq.to(device), batch.hq.to(device)


def first_batch(dataset: torch.utils.data.Dataset, n: int):
    """The first ``n`` items of ``dataset`` collated (its ``collate`` if it has one): a fixed
    validation batch, so runs are comparable."""
    collate = getattr(dataset, "collate", None) or torch.utils.data.default_collate
    return collate([dataset[i] for i in range(min(n, len(dataset)))])
