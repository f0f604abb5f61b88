"""Paired-folder training dataset: real degraded/clean pairs from a :class:`DatasetSpec`."""

from __future__ import annotations

import torch

from rar.data.base import SeededDataset, random_crop_box, resize_to
from rar.data.batch import RestorationSample
from rar.data.specs import DatasetSpec, ImagePair
from rar.degradations import DegradationLabel
from rar.utils.image_io import load_image

REAL_SEVERITY = "medium"
"""Default severity for the labels of real (captured) degradations, whose strength is not measured."""


class PairedFolderDataset(SeededDataset):
    """Random aligned crops of a paired dataset (GoPro, LOL, SIDD, ...).

    Each sample is one pair (``index`` into the sorted pairs), an aligned random crop and an
    optional horizontal flip, drawn from the per-sample generator. Labels are the spec's
    ``degradations`` with empty ``params`` and severity ``severity`` (real pairs carry no
    measured strength; :class:`DegradationLabel` only admits its five severity words).

    Args:
        spec: the dataset (must be paired: ``spec.lq_dir`` set); ``spec.scale`` > 1 means the
            LQ is ``scale`` times smaller (the crop is aligned on the LQ grid).
        crop_size: HQ crop side in pixels (multiple of ``spec.scale``); ``None`` = whole images.
        hflip: flip each pair horizontally with probability 1/2.
        resize_lq_to_hq: upsample a smaller LQ crop to the HQ size (MATLAB bicubic) so that
            ``lq`` and ``hq`` have equal shapes; otherwise keep the LQ at its own size.
        seed: base seed of the per-sample generators.
        severity: severity word written into every label.
    """

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        crop_size: int | None = 256,
        hflip: bool = True,
        resize_lq_to_hq: bool = True,
        seed: int = 0,
        severity: str = REAL_SEVERITY,
    ) -> None:
        super().__init__(seed)
        if crop_size is not None and crop_size % spec.scale:
            raise ValueError(f"crop_size {crop_size} must be a multiple of the dataset scale {spec.scale} ({spec.name})")
        self.spec = spec
        self.pairs: list[ImagePair] = spec.pairs()
        self.crop_size = crop_size
        self.hflip = hflip
        self.resize_lq_to_hq = resize_lq_to_hq
        self.labels = [DegradationLabel(name=name, params={}, severity=severity) for name in spec.degradations]

    def __len__(self) -> int:
        return len(self.pairs)

    def sample(self, index: int, generator: torch.Generator) -> RestorationSample:
        pair = self.pairs[index]
        lq, hq = load_image(pair.lq), load_image(pair.hq)
        scale = self.spec.scale
        lq_h, lq_w = lq.shape[-2:]
        if hq.shape[-2] < lq_h * scale or hq.shape[-1] < lq_w * scale:
            raise ValueError(
                f"{self.spec.name}: HQ {pair.hq} is {tuple(hq.shape[-2:])}, smaller than {scale} x LQ "
                f"{pair.lq} ({lq_h}x{lq_w})"
            )
        if self.crop_size is None:
            hq = hq[:, : lq_h * scale, : lq_w * scale]
        else:
            lq_size = self.crop_size // scale
            try:
                top, left = random_crop_box(lq_h, lq_w, lq_size, generator)
            except ValueError as error:
                raise ValueError(f"{self.spec.name}: {pair.lq}: {error}") from error
            lq = lq[:, top : top + lq_size, left : left + lq_size]
            hq = hq[:, top * scale : (top + lq_size) * scale, left * scale : (left + lq_size) * scale]
        if self.hflip and bool(torch.rand((), generator=generator) < 0.5):
            lq, hq = lq.flip(-1), hq.flip(-1)
        if self.resize_lq_to_hq and lq.shape != hq.shape:
            lq = resize_to(lq, hq.shape[-2:])
        return RestorationSample(lq=lq, hq=hq, labels=list(self.labels), name=pair.name, source=self.spec.name)
