"""Figures from run folders: training curves and a comparison grid of methods.

CPU or cluster alike (they only read run folders)::

    # loss (and logged validation) curves of training runs, one PNG
    python scripts/figures.py curves runs/tiny/uir runs/tiny/joint --out figures/curves.png
    # paper Fig. 4/6: the same items restored by several methods (eval run folders of one benchmark)
    python scripts/figures.py grid runs/eval/samples_groupC/identity runs/eval/samples_groupC/rar \
        --labels input RAR --count 4 --out figures/grid_groupC.png

A run's label defaults to its folder name; ``--labels`` names them in order. The grid's items
come from the benchmark recorded in the first eval run's ``config.yaml`` (every run must have
evaluated the same benchmark).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from rar.eval.benchmark import as_benchmark
from rar.eval.figures import comparison_grid, plot_training_curves


def _labelled(runs: list[Path], labels: list[str] | None) -> dict[str, Path]:
    if labels is not None and len(labels) != len(runs):
        raise SystemExit(f"error: {len(runs)} runs but {len(labels)} labels")
    names = labels or [run.name for run in runs]
    if len(set(names)) != len(names):
        raise SystemExit(f"error: run labels must differ, got {names} (name them with --labels)")
    return dict(zip(names, runs, strict=True))


def _benchmark(runs: dict[str, Path]):
    names = set()
    for run in runs.values():
        config = run / "config.yaml"
        if not config.is_file():
            raise SystemExit(f"error: {run}: no config.yaml (expected an eval run folder)")
        names.add(OmegaConf.load(config).benchmark.name)
    if len(names) != 1:
        raise SystemExit(f"error: the runs evaluated different benchmarks: {sorted(names)}")
    cfg = OmegaConf.load(next(iter(runs.values())) / "config.yaml")
    return as_benchmark(cfg.benchmark.name, instantiate(cfg.benchmark.set))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="figure", required=True)
    for name, help_text in (("curves", "training curves from metrics.jsonl"), ("grid", "comparison grid")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("runs", nargs="+", type=Path)
        p.add_argument("--labels", nargs="+")
        p.add_argument("--out", type=Path, required=True)
        if name == "grid":
            p.add_argument("--count", type=int, default=4)
            p.add_argument("--height", type=int, default=128)
            p.add_argument("--keys", nargs="+", help="benchmark item keys (default: one per combination)")
    args = parser.parse_args(argv)
    runs = _labelled(args.runs, args.labels)
    try:
        if args.figure == "curves":
            out = plot_training_curves(runs, args.out)
        else:
            out = comparison_grid(_benchmark(runs), runs, args.out, count=args.count, height=args.height,
                                  keys=args.keys)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
