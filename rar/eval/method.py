"""What the evaluation harness needs from a restoration method.

Two kinds of method feed the harness:

- a :class:`Method` restores a batch of degraded images (the RAR pipeline, the ``identity``
  baseline, any model). It reports, per batch, the restored images, the loop rounds each image
  took, the decoded assessment text per round and wall-clock seconds per loop stage;
- a :class:`StoredOutputs` looks up results that already exist on disk (another method's saved
  outputs, e.g. AgenticIR's released results) by the benchmark item key.

Methods that hold weights also implement ``to(device)`` (``torch.nn.Module`` and diffusers
pipelines do); the evaluation script calls it once before the first image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

STAGES: tuple[str, ...] = ("preprocess", "encode", "assess", "restore", "compare", "decode")
"""Loop stages of RAR, in the order the timing table lists them (paper Table 7)."""


@dataclass
class MethodOutput:
    """Result of restoring one batch.

    Attributes:
        images: ``[B, 3, H', W']`` float in ``[0, 1]``, RGB. ``H', W'`` equal the reference size,
            or are exactly 1/4 of it (the harness then upscales ×4, MATLAB bicubic).
        rounds: per image, the restore→assess rounds taken (``0`` for methods without a loop).
        labels: per image, the decoded assessment text of each round (``[]`` without a loop).
        seconds: wall-clock seconds spent in each stage for the whole batch, keyed by stage name
            (see :data:`STAGES`; other names are reported too). Empty when the method has no stages.
    """

    images: torch.Tensor
    rounds: list[int]
    labels: list[list[str]]
    seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"MethodOutput.images must be [B,3,H,W], got {tuple(self.images.shape)}")
        batch = self.images.shape[0]
        if len(self.rounds) != batch or len(self.labels) != batch:
            raise ValueError(
                f"MethodOutput has {batch} images but {len(self.rounds)} rounds and {len(self.labels)} label lists"
            )


@runtime_checkable
class Method(Protocol):
    """A restoration method: degraded batch in, restored batch out."""

    def restore(self, lq: torch.Tensor) -> MethodOutput:
        """Restore ``lq [B, 3, h, w]`` in ``[0, 1]`` (on the evaluation device)."""
        ...


@runtime_checkable
class StoredOutputs(Protocol):
    """Outputs that already exist, looked up by benchmark item key (relative LQ path)."""

    def check(self, keys: Sequence[str]) -> None:
        """Raise :class:`FileNotFoundError` listing every key that has no stored output."""
        ...

    def load(self, key: str) -> MethodOutput:
        """The stored output of one item, as a batch of one."""
        ...


class IdentityMethod:
    """The degraded input itself: the "no restoration" row of every table.

    Low-resolution inputs stay at 1/4 size; the harness's ×4 rule brings them to the reference size.
    """

    def restore(self, lq: torch.Tensor) -> MethodOutput:
        batch = lq.shape[0]
        return MethodOutput(images=lq.clone(), rounds=[0] * batch, labels=[[] for _ in range(batch)])
