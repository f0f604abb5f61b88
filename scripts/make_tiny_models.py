"""Write the tiny experiment's random "pretrained" models: ``python scripts/make_tiny_models.py [out]``.

They stand in for the weights real runs load from disk or a hub id, and are loaded through the
same ``pretrained=<folder>`` code path::

    <out>/sd3_text/   tiny CLIP-L / CLIP-G / T5 text encoders + tokenizers (SD3.5 folder layout)
    <out>/sd15_text/  tiny CLIP-L text encoder + tokenizer (SD1.5 folder layout; the SD1.5 ablation)
    <out>/depictqa/   tiny CLIP vision tower, LLaMA and word-level tokenizer (DepictQA layout)
    <out>/autoencoder/vae/  a random tiny AutoencoderKL (SD3.5 VAE layout; the tiny experiment
                      replaces it with the one `stage=autoencoder` trains)

``out`` defaults to ``runs/tiny/pretrained`` (the ``tiny_dir`` of ``configs/train.yaml``).
Deterministic: the same seed writes the same weights.
"""

from __future__ import annotations

import argparse
import pathlib

from rar.lqa.tiny import save_tiny_depictqa
from rar.testing import (
    save_tiny_autoencoder,
    save_tiny_clip_text_encoder,
    save_tiny_sd3_text_encoders,
)


def make_tiny_models(out: pathlib.Path, seed: int = 0) -> pathlib.Path:
    save_tiny_sd3_text_encoders(out / "sd3_text", seed=seed)
    save_tiny_clip_text_encoder(out / "sd15_text", seed=seed)
    save_tiny_depictqa(out / "depictqa", seed=seed)
    save_tiny_autoencoder(out / "autoencoder", seed=seed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="runs/tiny/pretrained", type=pathlib.Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"tiny models written to {make_tiny_models(args.out, args.seed)}")


if __name__ == "__main__":
    main()
