"""Wall-clock seconds per loop stage, with nesting (a section inside another pauses the outer one).

A re-assessment inside the integration hook is timed as ``assess``, not ``restore``. On CUDA the
device is synchronised at every section boundary so kernels are charged to the stage that
launched them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def synchronize(device: torch.device | None) -> None:
    """Wait for ``device``'s queued kernels (CUDA); nothing on CPU or ``None``."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


class StageClock:
    """Accumulates seconds per stage name.

    Args:
        device: the device the timed work runs on (synchronised at boundaries if CUDA).
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else None
        self.seconds: dict[str, float] = {}
        self._stack: list[str] = []
        self._since = 0.0

    def _charge(self) -> None:
        now = time.perf_counter()
        if self._stack:
            name = self._stack[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - self._since
        self._since = now

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Time the body as ``name``; time spent in nested sections goes to those instead."""
        synchronize(self.device)
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            synchronize(self.device)
            self._charge()
            self._stack.pop()

    def total(self) -> float:
        return sum(self.seconds.values())
