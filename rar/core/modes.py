"""Switching a module's train/eval mode for one block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def train_mode(module: torch.nn.Module, training: bool) -> Iterator[None]:
    """Put ``module`` in train (``True``) or eval mode for the block, then restore its mode."""
    was = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(was)
