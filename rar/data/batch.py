"""Typed training samples and their collate function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rar.degradations import DegradationLabel


@dataclass
class RestorationSample:
    """One training pair.

    Attributes:
        lq: degraded image ``[3, h, w]`` in ``[0, 1]`` (``h, w`` equal the HQ size unless the
            dataset was asked to keep low-resolution LQ at its own size).
        hq: clean image ``[3, H, W]`` in ``[0, 1]``.
        labels: degradations present in ``lq``, in application order (empty for clean pairs).
        name: identifies the source image (relative path or file name).
        source: name of the dataset / corpus the sample came from.
    """

    lq: torch.Tensor
    hq: torch.Tensor
    labels: list[DegradationLabel]
    name: str
    source: str


@dataclass
class RestorationBatch:
    """A batch of :class:`RestorationSample`.

    Attributes:
        lq: ``[B, 3, h, w]`` in ``[0, 1]``.
        hq: ``[B, 3, H, W]`` in ``[0, 1]``.
        labels: per image, its degradation labels in application order.
        names: per image, its source image name.
        sources: per image, its dataset name.
    """

    lq: torch.Tensor
    hq: torch.Tensor
    labels: list[list[DegradationLabel]]
    names: list[str]
    sources: list[str]

    def to(self, device: torch.device | str) -> RestorationBatch:
        """Copy of the batch with its tensors on ``device``."""
        return RestorationBatch(self.lq.to(device), self.hq.to(device), self.labels, self.names, self.sources)

    def __len__(self) -> int:
        return self.lq.shape[0]


def collate_samples(samples: Sequence[RestorationSample]) -> RestorationBatch:
    """Stack samples into a :class:`RestorationBatch` (``DataLoader(collate_fn=...)``).

    Raises:
        ValueError: empty input, or samples whose LQ or HQ shapes differ (use a fixed crop size).
    """
    if not samples:
        raise ValueError("collate_samples got an empty list of samples")
    for attr in ("lq", "hq"):
        shapes = {tuple(getattr(s, attr).shape) for s in samples}
        if len(shapes) > 1:
            detail = ", ".join(f"{s.name}: {tuple(getattr(s, attr).shape)}" for s in samples)
            raise ValueError(f"cannot batch samples with different {attr} shapes ({detail}); use a fixed crop_size")
    return RestorationBatch(
        lq=torch.stack([s.lq for s in samples]),
        hq=torch.stack([s.hq for s in samples]),
        labels=[list(s.labels) for s in samples],
        names=[s.name for s in samples],
        sources=[s.source for s in samples],
    )
