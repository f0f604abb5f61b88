"""Vectorised parameter draws from an explicit ``torch.Generator``, returned as Python numbers.

Parameters become JSON-serialisable label values, so every draw is returned as a list of plain
``float``/``int``/``bool`` (one per image). Draws happen on the generator's device in float64.
Integer ranges follow numpy's ``randint(lo, hi)``: ``hi`` is exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Draw:
    """Per-image random draws from ``generator`` (each call consumes the generator in a fixed order)."""

    def __init__(self, generator: torch.Generator):
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"expected a torch.Generator, got {type(generator).__name__}")
        self.generator = generator

    def _rand(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self.generator.device, dtype=torch.float64).cpu()

    def uniform(self, n: int, lo: float, hi: float) -> list[float]:
        """``n`` samples of ``U(lo, hi)``."""
        return (self._rand(n) * (hi - lo) + lo).tolist()

    def integers(self, n: int, lo: int, hi: int) -> list[int]:
        """``n`` integers in ``[lo, hi)`` (numpy ``randint`` convention)."""
        return torch.randint(lo, hi, (n,), generator=self.generator, device=self.generator.device).cpu().tolist()

    def bernoulli(self, n: int, p: float) -> list[bool]:
        """``n`` coin flips, ``True`` with probability ``p``."""
        return (self._rand(n) < p).tolist()

    def index(self, n: int, probs: Sequence[float]) -> list[int]:
        """``n`` indices drawn with the given (unnormalised, non-negative) probabilities."""
        weights = torch.as_tensor(list(probs), dtype=torch.float64)
        if weights.ndim != 1 or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"probabilities must be non-negative with a positive sum, got {list(probs)}")
        cdf = torch.cumsum(weights / weights.sum(), 0)
        picks = torch.searchsorted(cdf, self._rand(n), right=True)
        return picks.clamp_max(len(weights) - 1).tolist()

    def choice(self, n: int, options: Sequence, probs: Sequence[float] | None = None) -> list:
        """``n`` picks from ``options`` (uniform unless ``probs``)."""
        picks = self.index(n, probs if probs is not None else [1.0] * len(options))
        return [options[i] for i in picks]
