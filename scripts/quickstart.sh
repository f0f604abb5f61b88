#!/usr/bin/env bash
# The README's main command: install the project into .venv, evaluate the committed tiny RAR model
# (models/tiny) against the degraded input on the three bundled sample benchmarks, and print one
# table (PSNR, SSIM, seconds per image, mean rounds; also runs/eval/tiny_samples/collected.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -e ".[dev]"
.venv/bin/python scripts/eval.py -m benchmark=samples_groupA,samples_groupB,samples_groupC method=identity,rar \
    'metrics=[psnr,ssim]' hydra.sweep.dir=runs/eval/tiny_samples
.venv/bin/python scripts/collect.py runs/eval/tiny_samples
