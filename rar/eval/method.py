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
from typing import Protocol, runtime_checkable

import torch

from rar.core.outputs import MethodOutput


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
