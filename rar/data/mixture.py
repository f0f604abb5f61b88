"""Weighted mixture of training datasets (synthetic corpora + real paired sets)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rar.data.base import SeededDataset
from rar.data.batch import RestorationSample


class MixtureDataset(SeededDataset):
    """Samples drawn from several :class:`SeededDataset` components with fixed probabilities.

    For sample ``i`` the per-sample generator (seeded from ``(seed, epoch, i)``) picks a
    component with probability ``weight / sum(weights)``, then a uniformly random index inside
    it, then lets the component build that sample from the *same* generator — so every
    mixture index yields its own crop and degradation, deterministically.

    Args:
        components: ``{name: dataset}``; each must be a :class:`SeededDataset` (paired,
            synthetic, or another mixture).
        weights: ``{name: weight}`` with exactly the same names; non-negative, positive sum.
        length: samples per epoch.
        seed: base seed of the per-sample generators.
    """

    def __init__(
        self,
        components: Mapping[str, SeededDataset],
        weights: Mapping[str, float],
        length: int,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if set(components) != set(weights):
            raise ValueError(
                f"mixture components {sorted(components)} and weights {sorted(weights)} must name the same datasets"
            )
        if not components:
            raise ValueError("a mixture needs at least one component")
        for name, dataset in components.items():
            if not isinstance(dataset, SeededDataset):
                raise TypeError(f"mixture component {name!r} is a {type(dataset).__name__}, expected a SeededDataset")
            if len(dataset) == 0:
                raise ValueError(f"mixture component {name!r} is empty")
        self.names = list(components)
        self.components = [components[name] for name in self.names]
        values = [float(weights[name]) for name in self.names]
        if any(w < 0 for w in values) or sum(values) <= 0:
            raise ValueError(f"mixture weights must be non-negative with a positive sum, got {dict(weights)}")
        self.weights = torch.tensor(values, dtype=torch.float64)
        if length < 1:
            raise ValueError(f"mixture length must be positive, got {length}")
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int, generator: torch.Generator) -> RestorationSample:
        choice = int(torch.multinomial(self.weights, 1, generator=generator))
        component = self.components[choice]
        inner = int(torch.randint(0, len(component), (1,), generator=generator))
        return component.sample(inner, generator)
