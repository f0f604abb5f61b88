"""Merge a Hydra multirun sweep of evaluation runs into one table: ``python scripts/collect.py MULTIRUN_DIR``.

CPU::

    HF_HUB_OFFLINE=1 python scripts/eval.py -m benchmark=samples_groupA,samples_groupB method=identity \
        'metrics=[psnr,ssim]'
    python scripts/collect.py multirun/eval/2026-01-01_12-00-00

Cluster: the same, on the sweep folder the launcher wrote (e.g. ``hydra/launcher=submitit_slurm``).

Writes ``MULTIRUN_DIR/collected.md`` and ``collected.csv`` (one row per job, with its overrides)
and prints the markdown table.
"""

from __future__ import annotations

import argparse

from rar.eval.collect import collect_sweep, collected_markdown, write_collected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multirun_dir", help="sweep folder: <job>/.hydra/overrides.yaml and <job>/summary.csv")
    args = parser.parse_args(argv)
    rows = collect_sweep(args.multirun_dir)
    md_path, csv_path = write_collected(rows, args.multirun_dir)
    print(collected_markdown(rows))
    print(f"wrote {md_path} and {csv_path}")


if __name__ == "__main__":
    main()
