"""The contract between the shared training loop and a training stage.

A stage is an ``nn.Module`` holding the modules it uses as children named after their config
group (``autoencoder``, ``uir``, ``conditioner``, ``lqa``, ``text_adapter``...). The loop wraps the
whole stage with ``accelerator.prepare`` and calls ``stage(batch)`` once per micro-batch; the
stage returns its loss. Which parameters train is decided by the phase's ``trainable`` patterns,
not by the stage, so one stage class serves several phases.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def train_mode(module: torch.nn.Module, training: bool):
    """Put ``module`` in train (``True``) or eval mode for the block, then restore its mode."""
    was = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(was)
