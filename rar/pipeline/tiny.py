"""A randomly initialised tiny RAR pipeline, for CPU tests and for trying the scripts untrained.

Same code path as a trained model: the LQA loads the tiny "pretrained" LLaMA/CLIP folders written
by :func:`rar.lqa.tiny.save_tiny_depictqa` through :func:`rar.lqa.factory.build_depictqa`; the UIR
is the ``tiny`` SD3 preset (optionally shallower); the autoencoder is space-to-depth ×4.

    HF_HUB_OFFLINE=1 python -c "from rar.pipeline.tiny import save_tiny_rar_model; save_tiny_rar_model('runs/tiny_random_rar')"
"""

from __future__ import annotations

from pathlib import Path

import torch

from rar.lqa.abstractor import Abstractor
from rar.lqa.factory import build_depictqa
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.text_adapter import TextAdapter
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline.config import LoopConfig
from rar.pipeline.pipeline import RARPipeline
from rar.uir.autoencoders import SpaceToDepthAutoencoder
from rar.uir.backbones import SD3_PRESETS, build_sd3_transformer


def build_tiny_rar_pipeline(
    depictqa_dir: str | Path,
    config: LoopConfig | None = None,
    uir_layers: int = 4,
    max_new_tokens: int = 16,
    lora_std: float = 0.0,
    seed: int = 0,
) -> RARPipeline:
    """A random tiny pipeline (48-channel latents, LLaMA 128-d, text adapter → ``[B, 32, 64]`` / ``[B, 48]``).

    Args:
        depictqa_dir: a folder written by :func:`save_tiny_depictqa` (``llm/`` and ``vision/``).
        config: loop settings.
        uir_layers: MMDiT depth (the ``tiny`` preset has 4).
        max_new_tokens: the LQA's answer budget.
        lora_std: if > 0, LoRA ``B`` matrices are drawn from ``N(0, lora_std)`` instead of zero, so
            the adapter changes the LLM's outputs (tests of LoRA saving need that).
        seed: initialisation seed (the global RNG is left untouched).
    """
    depictqa_dir = Path(depictqa_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        abstractor = Abstractor(64, num_queries=16, num_layers=1, nhead=4, dim_feedforward=128)
        image_adapter = LatentImageAdapter(48, 64, 16, width=64, patch_size=2, encoder_layers=1, decoder_layers=1,
                                           nhead=4, dim_feedforward=128)
        lqa = build_depictqa(str(depictqa_dir / "llm"), abstractor, str(depictqa_dir / "vision"), image_adapter,
                             image_space="latent", max_new_tokens=max_new_tokens)
        if lora_std > 0:
            with torch.no_grad():
                for name, param in lqa.llm.named_parameters():
                    if "lora_B" in name:
                        param.normal_(0.0, lora_std)
        uir = build_sd3_transformer(config=dict(SD3_PRESETS["tiny"], num_layers=uir_layers))
        text_adapter = TextAdapter(128, seq_len=32, joint_dim=64, pooled_dim=48, width=64, num_layers=1, nhead=4,
                                   dim_feedforward=128)
    return RARPipeline(SpaceToDepthAutoencoder(4), uir, lqa, text_adapter, config)


def save_tiny_rar_model(folder: str | Path, config: LoopConfig | None = None, seed: int = 0) -> Path:
    """Write a random tiny model folder (its ``depictqa/`` parts go to ``<folder>.parts``)."""
    folder = Path(folder)
    parts = save_tiny_depictqa(folder.with_name(folder.name + ".parts"), seed=seed)
    return build_tiny_rar_pipeline(parts, config, seed=seed).save_pretrained(folder)
