"""What every restoration method returns to the evaluation harness (shared by ``rar.pipeline``,
``rar.baselines`` and ``rar.eval``, which all sit above this module)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
