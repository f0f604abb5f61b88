"""The paper's training schedule, stated in epochs and a global batch, turned into loop settings.

The paper gives its stages in epochs at a global batch (e.g. ``lqa_align``: batch 256, 20 epochs,
DeepSpeed's WarmupDecayLR). A stage config states that as its ``schedule:`` block; a real-scale
experiment switches it on (``paper_schedule: true``), and :func:`resolve_schedule` derives from the
dataset size and the process count what the shared loop needs:

- gradient accumulation ``= global_batch / (per-device batch × processes)`` (must divide);
- optimizer steps per phase ``= ceil(epochs × dataset size / global_batch)``;
- warmup steps ``= round(warmup_ratio × steps)`` per phase, always shorter than the phase.

The tiny experiment keeps ``paper_schedule: false`` and its phases' ``max_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rar.training.phases import Phase


@dataclass(frozen=True)
class Schedule:
    """A stage's schedule as the paper states it.

    Attributes:
        epochs: per phase, passes over the dataset (a phase may take a fraction).
        global_batch: samples per optimizer step over all processes.
        lr_scheduler: a ``diffusers.optimization.get_scheduler`` name (``"linear"`` is DeepSpeed's
            WarmupDecayLR: linear warmup, then linear decay to 0; ``"cosine"``: warmup, cosine decay).
        warmup_ratio: warmup as a fraction of each phase's steps, in ``[0, 1)``.
    """

    epochs: tuple[float, ...]
    global_batch: int
    lr_scheduler: str
    warmup_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not self.epochs or any(e <= 0 for e in self.epochs):
            raise ValueError(f"schedule epochs must be positive, one per phase; got {list(self.epochs)}")
        if self.global_batch < 1:
            raise ValueError(f"schedule global_batch must be >= 1, got {self.global_batch}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"schedule warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass(frozen=True)
class ResolvedSchedule:
    """What :func:`resolve_schedule` derived: ``phases`` with ``max_steps`` and ``warmup_steps``
    set, and the ``gradient_accumulation_steps`` that make up the global batch."""

    phases: tuple[Phase, ...]
    gradient_accumulation_steps: int
    lr_scheduler: str


def resolve_schedule(schedule: Schedule, phases: Sequence[Phase], dataset_size: int, per_device_batch: int,
                     processes: int) -> ResolvedSchedule:
    """Steps, warmup and gradient accumulation of ``phases`` under ``schedule`` (see the module doc)."""
    if len(schedule.epochs) != len(phases):
        raise ValueError(f"schedule gives epochs for {len(schedule.epochs)} phases, the stage has {len(phases)} "
                         f"({[p.name for p in phases]})")
    if dataset_size < 1:
        raise ValueError(f"an epoch-based schedule needs a dataset with a length, got {dataset_size} samples")
    per_step = per_device_batch * processes
    accumulation, rest = divmod(schedule.global_batch, per_step)
    if rest or accumulation < 1:
        raise ValueError(
            f"global batch {schedule.global_batch} is not a multiple of batch_size {per_device_batch} x "
            f"{processes} processes = {per_step}; change trainer.batch_size or the process count"
        )
    resolved = []
    for phase, epochs in zip(phases, schedule.epochs, strict=True):
        steps = math.ceil(epochs * dataset_size / schedule.global_batch)
        resolved.append(replace(phase, max_steps=steps, warmup_steps=round(schedule.warmup_ratio * steps)))
    return ResolvedSchedule(tuple(resolved), accumulation, schedule.lr_scheduler)


def check_warmup(phases: Sequence[Phase], default_warmup: int) -> None:
    """Every phase's warmup (its own, else ``default_warmup``) must be shorter than the phase."""
    for phase in phases:
        warmup = default_warmup if phase.warmup_steps is None else phase.warmup_steps
        if phase.max_steps > 0 and warmup >= phase.max_steps:
            raise ValueError(f"phase {phase.name!r}: warmup of {warmup} steps is not shorter than the phase "
                             f"({phase.max_steps} steps); lower trainer.warmup_steps or lengthen the phase")
