"""Training phases: which parameters train, for how long, at which learning rate."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Phase:
    """One phase of a stage: a fresh optimizer over the parameters matching ``trainable``.

    Attributes:
        name: folder name of the phase's checkpoints (``run_dir/checkpoints/<name>``).
        max_steps: optimizer steps in this phase.
        trainable: fnmatch patterns over ``stage.named_parameters()``; all others are frozen.
        lr: optional learning rate overriding the optimizer config's.
        warmup_steps: optional warmup overriding ``trainer.warmup_steps`` (set by an epoch-based
            schedule, :mod:`rar.training.schedule`).
    """

    name: str
    max_steps: int
    trainable: tuple[str, ...]
    lr: float | None = None
    warmup_steps: int | None = None

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise ValueError(f"phase {self.name!r}: max_steps must be >= 0, got {self.max_steps}")
        if not self.trainable:
            raise ValueError(f"phase {self.name!r}: 'trainable' needs at least one parameter pattern")


def matching_parameters(module: torch.nn.Module, patterns: tuple[str, ...]) -> list[str]:
    """Names of ``module``'s parameters matching any of ``patterns``; each pattern must match something."""
    names = [n for n, _ in module.named_parameters()]
    selected: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            roots = sorted({n.split(".")[0] for n in names})
            raise ValueError(
                f"trainable pattern {pattern!r} matches no parameter; top-level modules are {roots}"
            )
        selected.extend(h for h in hits if h not in selected)
    return selected


def set_trainable(module: torch.nn.Module, names: list[str]) -> list[torch.nn.Parameter]:
    """Freeze every parameter of ``module`` except ``names``; return the trainable ones in order."""
    wanted = set(names)
    params = []
    for name, p in module.named_parameters():
        p.requires_grad_(name in wanted)
        if name in wanted:
            params.append(p)
    return params
