"""Train one RAR stage: ``python scripts/train.py stage=NAME [overrides]``.

CPU (the tiny experiment's models, a few steps)::

    python scripts/train.py stage=uir trainer.batch_size=4 'phases.0.max_steps=20'
    python scripts/train.py stage=uir resume=true              # continue the same run directory

Cluster (8 GPUs per node, Accelerate DDP; see configs/accelerate/ for FSDP/DeepSpeed)::

    accelerate launch --multi_gpu --num_processes 8 scripts/train.py experiment=sd35_medium stage=uir \
        name=sd35m_uir trainer.mixed_precision=bf16

Each stage reads the previous one explicitly: ``init_from=runs/<name>/<previous stage>``.
The run directory (``runs/<name>/<stage>`` by default) holds the resolved config, metrics,
checkpoints and the hand-off weights in ``model/``. A run stopped by SIGTERM checkpoints and exits
with status 143 (so a pipeline of stages, e.g. ``scripts/tiny_experiment.sh``, stops there too);
``resume=true`` continues it. A bad setting or input file is one ``error:`` line and status 2.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from rar.training.build import run_training
from rar.utils.cli_errors import one_line_errors

INTERRUPTED_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process killed by it


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


def run(cfg: DictConfig) -> float | None:
    """Train as configured; a bad input exits with status 2, an interrupted run with 143."""
    with one_line_errors():
        results = run_training(cfg)
    if any(r.interrupted for r in results):
        print(f"interrupted: checkpointed in {cfg.run_dir}; continue with resume=true", file=sys.stderr)
        raise SystemExit(INTERRUPTED_EXIT)
    final = [r.losses[-1] for r in results if r.losses]
    return final[-1] if final else None  # the sweeper's objective


if __name__ == "__main__":
    main()
