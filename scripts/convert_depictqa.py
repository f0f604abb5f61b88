"""Convert DepictQA's released checkpoint (abstractor, projector, LoRA) to an ``init_from`` folder.

CPU (any machine; the target model is built on the meta device, nothing is loaded)::

    python scripts/convert_depictqa.py --ckpt ModelZoo/DepictQA/DQ495K_Abstractor/ckpt/ckpt.pt \
        --out runs/depictqa_released

Cluster: the same command (it needs no GPU). Then start the LQA stages from it::

    python scripts/train.py stage=lqa_align lqa=depictqa autoencoder=sd35 init_from=runs/depictqa_released

``--lqa-config`` (default ``configs/lqa/depictqa.yaml``) gives the abstractor and LoRA settings;
the LLM and CLIP shapes are Vicuna-7B-v1.5 and CLIP ViT-L/14 (:mod:`rar.lqa.architectures`) unless
``--llm-config`` / ``--vision-config`` name folders holding other ``config.json`` files. Every
tensor is checked by name and shape.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf
from transformers import CLIPVisionConfig, LlamaConfig

from rar.lqa.architectures import clip_vit_l14_config, vicuna_7b_v15_config
from rar.lqa.convert import convert_depictqa_state, load_depictqa_checkpoint, write_init_dir
from rar.lqa.factory import build_skeleton

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="DepictQA ckpt.pt (trainable tensors only)")
    parser.add_argument("--out", required=True, help="output folder; gets model/lqa/weights.safetensors")
    parser.add_argument("--lqa-config", default=str(ROOT / "configs/lqa/depictqa.yaml"))
    parser.add_argument("--llm-config", default=None, help="folder with the LLM's config.json (default Vicuna-7B-v1.5)")
    parser.add_argument("--vision-config", default=None, help="folder with CLIP's config.json (default ViT-L/14)")
    args = parser.parse_args(argv)

    cfg = OmegaConf.load(args.lqa_config)
    llm_config = LlamaConfig.from_pretrained(args.llm_config) if args.llm_config else vicuna_7b_v15_config()
    clip_config = CLIPVisionConfig.from_pretrained(args.vision_config) if args.vision_config else clip_vit_l14_config()
    with torch.device("meta"):
        reference = build_skeleton(
            llm_config,
            hydra.utils.instantiate(cfg.abstractor),
            clip_config=clip_config,
            image_adapter=hydra.utils.instantiate(cfg.image_adapter) if cfg.get("image_adapter") else None,
            lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            lora_targets=list(cfg.lora_targets),
        )
    tensors = convert_depictqa_state(load_depictqa_checkpoint(args.ckpt), reference)
    path = write_init_dir(tensors, args.out, source=str(args.ckpt))
    print(f"wrote {len(tensors)} tensors to {path}")


if __name__ == "__main__":
    main()
