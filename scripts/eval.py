"""Evaluation entry point: ``python scripts/eval.py benchmark=NAME method=NAME``.

At this stage of the project the harness is not written yet: this script composes the
evaluation config and prints it resolved, so benchmark configs can be checked::

    python scripts/eval.py benchmark=samples_groupC
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    print(OmegaConf.to_yaml(cfg, resolve=True))


if __name__ == "__main__":
    main()
