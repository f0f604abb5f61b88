"""Reconstruction quality of an autoencoder on a benchmark set (clean and degraded images, full size).

CPU (the tiny experiment's learned autoencoder; ``--s2d`` scores the space-to-depth one)::

    python scripts/autoencoder_quality.py runs/tiny/autoencoder/model
    python scripts/autoencoder_quality.py runs/tiny/autoencoder/model --bench data/benchmarks/samples --json q.json

Cluster: the same command with an SD3.5 folder (``<sd35 folder>``, subfolder ``vae``) and ``--device cuda``.
Prints a Markdown table of mean PSNR/SSIM per row (``clean``, then each group's LQ images), then
what the reconstruction alone costs per combination against the input (SSIM, worst first): no
accepted round comes out far above that floor. Low-resolution inputs are upscaled x4 first, as RAR
encodes them (``--no-upscale``: as they are).
"""

from __future__ import annotations

import argparse
import json
import pathlib

from rar.data.benchmark_sets import BenchmarkSet
from rar.eval.metrics import MetricSuite
from rar.eval.reconstruction import reconstruction_quality
from rar.uir.autoencoders import SpaceToDepthAutoencoder, build_kl_autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained", nargs="?", help="diffusers folder (or hub id) holding the VAE subfolder")
    parser.add_argument("--subfolder", default="vae")
    parser.add_argument("--s2d", action="store_true", help="score the space-to-depth x4 autoencoder instead")
    parser.add_argument("--bench", default="data/benchmarks/samples", type=pathlib.Path)
    parser.add_argument("--metrics", default="psnr,ssim")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-upscale", action="store_true", help="encode low-resolution inputs as they are")
    parser.add_argument("--json", type=pathlib.Path, help="also write the report here")
    args = parser.parse_args()
    if args.s2d == (args.pretrained is not None):
        parser.error("give either a pretrained folder or --s2d")
    autoencoder = SpaceToDepthAutoencoder(4) if args.s2d else build_kl_autoencoder(args.pretrained, args.subfolder)
    report = reconstruction_quality(autoencoder.to(args.device), BenchmarkSet.load(args.bench),
                                    MetricSuite(args.metrics.split(","), device=args.device),
                                    upscale_inputs=not args.no_upscale)
    print(report.table())
    if "ssim" in args.metrics.split(","):
        print(report.combination_table("ssim"))
    print(f"encode+decode: {report.seconds:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": report.rows, "combinations": report.combinations,
                                         "counts": report.counts, "seconds": report.seconds}, indent=2))


if __name__ == "__main__":
    main()
