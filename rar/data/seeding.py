"""Deterministic per-item random generators.

Every random choice in the data pipeline (crop, flip, degradation combination, degradation
parameters) is drawn from a ``torch.Generator`` seeded from a hash of the item's identity, e.g.
``(seed, epoch, index)`` for a training sample or ``(seed, combination, image name)`` for a
benchmark image. The result depends only on that identity, never on the DataLoader worker
count, the order items are visited, or which other items are built.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*keys: object) -> int:
    """A 63-bit seed from the SHA-256 of the keys' ``repr`` (stable across runs and machines)."""
    text = "\x1f".join(repr(key) for key in keys)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


def item_generator(*keys: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` of ``keys``."""
    generator = torch.Generator()
    generator.manual_seed(derive_seed(*keys))
    return generator
