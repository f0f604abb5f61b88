"""Shared test setup: offline hubs, no wandb, one torch thread, and the tiny random models.

Tests load tiny randomly-initialised models through the same ``pretrained=<folder>`` path real
weights use; ``tiny_dir`` writes them once per session in the layout of ``configs/train.yaml``'s
``tiny_dir`` (``sd3_text/``, ``sd15_text/``, ``depictqa/`` and ``autoencoder/``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402

from rar.lqa.tiny import save_tiny_depictqa  # noqa: E402
from rar.testing import (  # noqa: E402
    save_tiny_autoencoder,
    save_tiny_clip_text_encoder,
    save_tiny_sd3_text_encoders,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and results do not depend on the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_pretrained")
    save_tiny_sd3_text_encoders(root / "sd3_text")
    save_tiny_clip_text_encoder(root / "sd15_text")
    save_tiny_depictqa(root / "depictqa")
    save_tiny_autoencoder(root / "autoencoder")
    return root
