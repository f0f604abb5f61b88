"""Shared base of the training datasets: per-sample seeding and epoch handling."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch.utils.data import Dataset

from rar.data.batch import RestorationSample, collate_samples
from rar.data.seeding import item_generator
from rar.degradations import imresize


class SeededDataset(Dataset, ABC):
    """A map-style dataset whose randomness is a pure function of ``(seed, epoch, index)``.

    Subclasses implement :meth:`sample`, drawing every random choice from the generator they
    are given. ``dataset[i]`` seeds that generator from ``(seed, epoch, i)``, so a sample is the
    same whatever the DataLoader worker count or visiting order. Call :meth:`set_epoch` before
    each epoch (with ``persistent_workers=True`` the workers keep the epoch they were started
    with, so leave it off).
    """

    collate = staticmethod(collate_samples)
    """The DataLoader ``collate_fn`` for these samples (returns a ``RestorationBatch``)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops / degradations ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> RestorationSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        return self.sample(index, item_generator(self.seed, self.epoch, index))

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def sample(self, index: int, generator: torch.Generator) -> RestorationSample:
        """The sample at ``index`` with all randomness drawn from ``generator``."""


def random_crop_box(height: int, width: int, size: int, generator: torch.Generator, multiple: int = 1) -> tuple[int, int]:
    """Top-left corner ``(top, left)`` of a uniformly random ``size x size`` crop.

    ``multiple`` constrains the corner to multiples of it (for aligned crops of an x``multiple``
    larger image). Raises ``ValueError`` if the image is smaller than the crop.
    """
    if height < size or width < size:
        raise ValueError(f"image of size {height}x{width} is smaller than the crop size {size}")
    top = int(torch.randint(0, (height - size) // multiple + 1, (1,), generator=generator)) * multiple
    left = int(torch.randint(0, (width - size) // multiple + 1, (1,), generator=generator)) * multiple
    return top, left


def resize_to(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``img [3, h, w]`` to ``size = (H, W)`` with MATLAB bicubic, clamped to ``[0, 1]``."""
    return imresize(img[None], size=(int(size[0]), int(size[1])))[0].clamp(0, 1)
