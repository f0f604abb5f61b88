"""Train one RAR stage: ``python scripts/train.py stage=NAME [overrides]``.

CPU (the tiny experiment's models, a few steps)::

    python scripts/train.py stage=uir trainer.batch_size=4 'phases.0.max_steps=20'
    python scripts/train.py stage=uir resume=true              # continue the same run directory

Cluster (8 GPUs per node, Accelerate DDP; see configs/accelerate/ for FSDP/DeepSpeed)::

    accelerate launch --multi_gpu --num_processes 8 scripts/train.py experiment=sd35_medium stage=uir \
        name=sd35m_uir trainer.mixed_precision=bf16

Each stage reads the previous one explicitly: ``init_from=runs/<name>/<previous stage>``.
The run directory (``runs/<name>/<stage>`` by default) holds the resolved config, metrics,
checkpoints and the hand-off weights in ``model/``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from rar.training.build import run_training


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    results = run_training(cfg)
    final = [r.losses[-1] for r in results if r.losses]
    return final[-1] if final else None  # the sweeper's objective


if __name__ == "__main__":
    main()
