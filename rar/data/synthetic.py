"""On-the-fly synthetic training dataset: clean images + the degradation engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rar.data.base import SeededDataset, random_crop_box, resize_to
from rar.data.batch import RestorationSample
from rar.data.depth import load_depth
from rar.data.specs import DatasetSpec
from rar.degradations import DEGRADATIONS, degrade
from rar.utils.image_io import list_images, load_image


def validate_combinations(combinations: Sequence[Sequence[str]], where: str = "combinations") -> list[tuple[str, ...]]:
    """Check that each combination is a non-empty list of :data:`DEGRADATIONS` keys.

    Returns:
        The combinations as tuples, order kept (order = application order).

    Raises:
        ValueError: an empty list, a bare string instead of a list, or an unknown degradation
            name (the message lists the known names). An empty combination ``[]`` is allowed: it
            yields clean pairs (lq = hq, no labels), which teach the restorer to leave clean
            content alone and the assessor to answer "None".
    """
    if not combinations:
        raise ValueError(f"{where}: expected at least one degradation combination, got none")
    result = []
    for given in combinations:
        if isinstance(given, str):
            raise ValueError(f"{where}: each combination must be a list of names, got the string {given!r}")
        combination = tuple(given)
        unknown = [name for name in combination if name not in DEGRADATIONS]
        if unknown:
            raise ValueError(
                f"{where}: unknown degradation(s) {unknown} in {list(combination)}; known: {sorted(DEGRADATIONS)}"
            )
        result.append(combination)
    return result


class SyntheticDataset(SeededDataset):
    """Random crops of clean images, degraded on the fly with a weighted random combination.

    Sample ``i`` uses clean image ``i % len(images)``; from the per-sample generator it draws a
    crop, an optional horizontal flip, a combination (by ``weights``) and the degradation
    parameters (inside :func:`rar.degradations.degrade`).

    Args:
        source: folder of clean images, or a :class:`DatasetSpec` (its clean images; its depth
            maps, if any, feed depth-aware degradations such as haze), or a list of these
            (e.g. DIV2K + Flickr2K), concatenated.
        combinations: degradation combinations, each a list of ``DEGRADATIONS`` keys in
            application order, e.g. ``[["noise"], ["haze", "noise"], ["realesrgan"]]``.
        weights: relative sampling weight per combination (default: uniform).
        crop_size: crop side in pixels (use a multiple of 4 with ``low_resolution`` /
            ``realesrgan`` so the x4 upsampled LQ matches exactly); ``None`` = whole image.
        length: samples per epoch (default: one per clean image).
        hflip: flip the clean crop horizontally with probability 1/2.
        resize_lq_to_hq: upsample an LQ that a combination shrank (``low_resolution``,
            ``realesrgan``) back to the HQ size with MATLAB bicubic, so lq/hq shapes match;
            otherwise keep the small LQ.
        seed: base seed of the per-sample generators.
        name: source name recorded in each sample (default: the folder / spec names joined by ``+``).
    """

    def __init__(
        self,
        source: str | Path | DatasetSpec | Sequence[str | Path | DatasetSpec],
        combinations: Sequence[Sequence[str]],
        *,
        weights: Sequence[float] | None = None,
        crop_size: int | None = 64,
        length: int | None = None,
        hflip: bool = True,
        resize_lq_to_hq: bool = True,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(seed)
        self.combinations = validate_combinations(combinations, where=f"{type(self).__name__} combinations")
        weights = [1.0] * len(self.combinations) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.combinations):
            raise ValueError(f"got {len(weights)} weights for {len(self.combinations)} combinations")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.weights = torch.tensor(weights, dtype=torch.float64)
        # any sequence (a list, or Hydra's ListConfig of a config's `source: [a, b]`), not a path
        sources = [source] if isinstance(source, (str, Path, DatasetSpec)) else list(source)
        if not sources:
            raise ValueError("SyntheticDataset needs at least one source of clean images")
        self.images: list[Path] = []
        self.specs: list[DatasetSpec | None] = []  # per image: its spec (for depth maps) or None
        for item in sources:
            files = item.images() if isinstance(item, DatasetSpec) else list_images(item)
            self.images += files
            self.specs += [item if isinstance(item, DatasetSpec) else None] * len(files)
        self.name = name or "+".join(s.name if isinstance(s, DatasetSpec) else Path(s).name for s in sources)
        self.crop_size = crop_size
        self.length = len(self.images) if length is None else int(length)
        self.hflip = hflip
        self.resize_lq_to_hq = resize_lq_to_hq

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int, generator: torch.Generator) -> RestorationSample:
        path = self.images[index % len(self.images)]
        spec = self.specs[index % len(self.images)]
        hq = load_image(path)
        depth_file = spec.depth_path(path) if spec is not None else None
        depth = load_depth(depth_file, hq.shape[-2:]) if depth_file is not None else None
        if self.crop_size is not None:
            try:
                top, left = random_crop_box(hq.shape[-2], hq.shape[-1], self.crop_size, generator)
            except ValueError as error:
                raise ValueError(f"{self.name}: {path}: {error}") from error
            box = (slice(None), slice(top, top + self.crop_size), slice(left, left + self.crop_size))
            hq = hq[box]
            depth = depth[box] if depth is not None else None
        if self.hflip and bool(torch.rand((), generator=generator) < 0.5):
            hq = hq.flip(-1)
            depth = depth.flip(-1) if depth is not None else None
        hq = hq.contiguous()
        choice = int(torch.multinomial(self.weights, 1, generator=generator))
        degraded = degrade(hq[None], self.combinations[choice], generator, depth=None if depth is None else depth[None])
        lq = degraded.lq[0]
        if self.resize_lq_to_hq and lq.shape != hq.shape:
            lq = resize_to(lq, hq.shape[-2:])
        return RestorationSample(lq=lq, hq=hq, labels=list(degraded.labels[0]), name=path.name, source=self.name)
