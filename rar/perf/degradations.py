"""Synthesis throughput of AgenticIR's degradation combinations, per group.

Each combination of ``AGENTICIR_GROUPS`` is applied to a batch of identical ``size × size``
photos (scikit-image's astronaut, or a smooth synthetic image without scikit-image) with a seeded
generator, after one untimed warm-up call; CUDA is synchronised around the timed calls. Haze uses
the synthetic depth fallback (no depth maps here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from rar.core.timing import synchronize
from rar.degradations import (
    AGENTICIR_DEGRADATIONS,
    AGENTICIR_GROUPS,
    combination_name,
    degrade,
    imresize,
)


@dataclass
class CombinationThroughput:
    """One combination: ``images_per_second`` over ``repeats`` calls of ``batch`` images."""

    group: str
    combination: str
    images_per_second: float


@dataclass
class DegradationBench:
    """Per-combination rows and, per group, images/s over all its combinations (total images /
    total time)."""

    size: int
    batch: int
    device: str
    rows: list[CombinationThroughput]
    groups: dict[str, float]


def sample_photo(size: int, batch: int, device: torch.device) -> torch.Tensor:
    """``[batch, 3, size, size]`` copies of a natural photo in ``[0, 1]`` (8-bit values)."""
    try:
        from skimage import data

        img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
        img = imresize(img, size=(size, size)).clamp(0, 1)
    except ImportError:
        y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        img = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * torch.sin(12 * x + 8 * y)])[None]
    img = (img * 255).round() / 255
    return img.expand(batch, -1, -1, -1).contiguous().to(device)



def time_combination(img: torch.Tensor, names: tuple[str, ...], repeats: int, seed: int) -> float:
    """Seconds for ``repeats`` calls of ``degrade`` on ``img`` (after one warm-up call)."""
    generator = torch.Generator(device=img.device).manual_seed(seed)
    degrade(img, names, generator)
    synchronize(img.device)
    start = time.perf_counter()
    for _ in range(repeats):
        degrade(img, names, generator)
    synchronize(img.device)
    return time.perf_counter() - start


def bench_degradations(
    size: int = 512, batch: int = 8, repeats: int = 3, device: torch.device | str = "cpu", seed: int = 0,
    groups: list[str] | None = None, singles: bool = False,
) -> DegradationBench:
    """Time every combination of ``groups`` (default A, B, C; ``singles`` adds each single degradation)."""
    device = torch.device(device)
    table = dict(AGENTICIR_GROUPS)
    if singles:
        table["single"] = [(n,) for n in AGENTICIR_DEGRADATIONS]
    chosen = groups if groups is not None else list(table)
    unknown = sorted(set(chosen) - set(table))
    if unknown:
        raise ValueError(f"unknown degradation groups {unknown}; known: {sorted(table)}")
    img = sample_photo(size, batch, device)
    rows, summary = [], {}
    for group in chosen:
        total = 0.0
        for names in table[group]:
            seconds = time_combination(img, names, repeats, seed)
            total += seconds
            rows.append(CombinationThroughput(group, combination_name(names), batch * repeats / seconds))
        summary[group] = batch * repeats * len(table[group]) / total
    return DegradationBench(size, batch, str(device), rows, summary)
