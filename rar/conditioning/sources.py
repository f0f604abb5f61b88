"""Where a training stage's UIR condition comes from, as injectable objects.

A stage holds its modules as children named after their config groups (``conditioner``, ``uir``,
``lqa``, ``text_adapter``...). A *condition source* is a small object the stage receives from
config; given those modules and the batch's :class:`ConditionInputs` it returns the
:class:`Condition` for the UIR. The stage never branches on the kind of condition.

* :class:`TextCondition` — ground-truth degradation text (``rar.degradations.describe``) through
  the frozen SD3.5 text encoders (module ``conditioner``; cached per text).
* :class:`ZeroCondition` — the "no condition" baseline: zeros of the widths the ``uir`` accepts.
* The LQA source (``c = text_adapter(LQA hidden states of z_lq)``, modules ``lqa`` and
  ``text_adapter``) implements the same protocol in ``rar.lqa``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from rar.conditioning.condition import Condition


@dataclass
class ConditionInputs:
    """What a condition source may read for one batch.

    Attributes:
        z_lq: ``[B, C, h, w]`` degraded latent (from the frozen autoencoder).
        labels: per image, its ground-truth degradation labels (``RestorationBatch.labels``),
            or None when the batch has none (e.g. at inference).
    """

    z_lq: torch.Tensor
    labels: Sequence[Any] | None = None

    @property
    def batch_size(self) -> int:
        return self.z_lq.shape[0]


class ConditionSource(Protocol):
    """``source(modules, inputs) -> Condition``; ``requires`` names the stage modules it reads."""

    requires: tuple[str, ...]

    def __call__(self, modules: Mapping[str, torch.nn.Module], inputs: ConditionInputs) -> Condition: ...


class TextCondition:
    """Ground-truth degradation descriptions encoded by the ``conditioner`` module.

    Args:
        describe: maps one image's labels to its text (``"noise, haze"``); default
            ``rar.degradations.describe``.
    """

    requires = ("conditioner",)

    def __init__(self, describe: Callable[[Any], str] | None = None) -> None:
        if describe is None:
            from rar.degradations import describe
        self.describe = describe

    def texts(self, inputs: ConditionInputs) -> list[str]:
        if inputs.labels is None:
            raise ValueError("TextCondition needs the batch's degradation labels; this batch has none")
        if len(inputs.labels) != inputs.batch_size:
            raise ValueError(f"{len(inputs.labels)} label lists for a batch of {inputs.batch_size} latents")
        return [self.describe(labels) for labels in inputs.labels]

    def __call__(self, modules: Mapping[str, torch.nn.Module], inputs: ConditionInputs) -> Condition:
        return modules["conditioner"](self.texts(inputs)).to(inputs.z_lq.device)


class ZeroCondition:
    """All-zero ``prompt_embeds [B, seq_len, D_joint]`` and ``pooled [B, D_pooled]``, with the
    widths read from the ``uir`` module (``joint_attention_dim``, ``pooled_projection_dim``).

    Args:
        seq_len: number of (zero) context tokens; SD3.5's text gives 333, the tiny one 32.
    """

    requires = ("uir",)

    def __init__(self, seq_len: int = 32) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.seq_len = seq_len

    def __call__(self, modules: Mapping[str, torch.nn.Module], inputs: ConditionInputs) -> Condition:
        uir = modules["uir"]
        return Condition.zeros(
            inputs.batch_size, self.seq_len, uir.joint_attention_dim, uir.pooled_projection_dim,
            device=inputs.z_lq.device, dtype=inputs.z_lq.dtype,
        )
