"""Assessor accuracy on a labelled benchmark (paper Tables S.1/S.2): ``python scripts/lqa_accuracy.py``.

CPU (the committed tiny model on the bundled samples; latent LQA and its pixel path)::

    HF_HUB_OFFLINE=1 python scripts/lqa_accuracy.py benchmark=samples_groupA

Cluster (a trained SD3.5 RAR, plus the zero-shot CLIP classifier row)::

    python scripts/lqa_accuracy.py benchmark=agenticir_groupA model=runs/sd35m/joint/model device=cuda \
        +assessors.clip._target_=rar.baselines.clip_iqa.clip_assessor +assessors.clip.path=/weights/sa-clip

Writes ``lqa_accuracy.md`` (the table) and ``lqa_accuracy.json`` (every number, unknown answer
phrases included) into the run folder (``runs/lqa_accuracy/<benchmark>``) and prints the table.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from rar.eval.lqa_accuracy import accuracy_markdown, evaluate_assessor


@hydra.main(version_base="1.3", config_path="../configs", config_name="lqa_accuracy")
def main(cfg: DictConfig) -> None:
    benchmark_set = instantiate(cfg.benchmark.set)
    rows = [evaluate_assessor(instantiate(spec), benchmark_set, include_clean=cfg.include_clean, device=cfg.device,
                               upscale_inputs=cfg.upscale_inputs)
            for spec in cfg.assessors.values()]
    table = accuracy_markdown(rows)
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lqa_accuracy.md").write_text(f"{cfg.benchmark.name}, model {cfg.model}\n\n{table}\n")
    (out / "lqa_accuracy.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(table)


if __name__ == "__main__":
    main()
