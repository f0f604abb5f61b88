"""Choose the stop rule's thresholds on the model's own rounds: ``python scripts/calibrate_stop.py model=DIR``.

Every degraded crop (``data``, a :class:`rar.data.synthetic.SyntheticDataset` over images neither
the restorer nor the LQA trained on: the seeded dead-leaves images; not the held-out benchmark)
runs ``rounds`` rounds with every output kept; each output is scored against the clean crop
(``metric``) and :func:`rar.eval.calibration.choose_threshold` picks the threshold (and round 1's
own, ``first_thresholds``; null: one for every round): of the rules within ``standard_errors`` of
the best, the one that keeps exactly one round most often. With ``write=true`` it writes the
thresholds into the model folder's ``rar_config.json`` and ``stop_calibration.json`` (the table,
and every crop's scores and ``p_better`` under ``crops`` for a post-hoc look at other rules) beside
it; with ``write=false`` the model folder is left as it was and the report goes to the run
directory.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from rar.data.batch import collate_samples
from rar.eval.calibration import choose_threshold
from rar.eval.metrics import MetricSuite
from rar.pipeline import RARPipeline
from rar.pipeline.config import LoopConfig
from rar.pipeline.model_folder import LOOP_CONFIG_NAME
from rar.pipeline.round_audit import own_rounds


@hydra.main(version_base="1.3", config_path="../configs", config_name="calibrate_stop")
def main(cfg: DictConfig) -> None:
    folder = Path(cfg.model)
    try:  # before the model loads, so that a missing image folder fails at once
        dataset = instantiate(cfg.data)
    except InstantiationException as error:
        if not isinstance(error.__cause__, FileNotFoundError):
            raise
        raise SystemExit(f"error: {error.__cause__} (data.source): make the dead-leaves images with `python "
                         "scripts/prepare_data.py task=dead_leaves`, or point data.source at images the model did "
                         "not train on") from None
    pipe = RARPipeline.from_pretrained(folder, device=cfg.device)
    suite = MetricSuite([cfg.metric], device=cfg.device)
    data = DataLoader(dataset, batch_size=int(cfg.batch_size), collate_fn=collate_samples)
    scores, p_better = [], []
    for batch in data:
        for audit, hq in zip(own_rounds(pipe, batch.lq, rounds=int(cfg.rounds)), batch.hq, strict=True):
            scores.append(torch.tensor([suite.score(image, hq, "crop")[cfg.metric] for image in audit.images]))
            p_better.append(audit.p_better)
    firsts = None if cfg.first_thresholds is None else list(cfg.first_thresholds)
    choice = choose_threshold(scores, p_better, list(cfg.thresholds), firsts, float(cfg.standard_errors))
    policy = [{"first_threshold": first, "threshold": later, cfg.metric: value}
              for (first, later), value in choice.policy.items()]
    report = {"model": str(folder), "metric": cfg.metric, "rounds": int(cfg.rounds),
              "data": OmegaConf.to_container(cfg.data, resolve=True), **asdict(choice), "policy": policy,
              "crops": [{cfg.metric: row.tolist(), "p_better": p.tolist()}
                        for row, p in zip(scores, p_better, strict=True)]}
    # a report-only run must not replace the record of the thresholds the folder holds
    report_dir = folder if cfg.write else Path(HydraConfig.get().runtime.output_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "stop_calibration.json").write_text(json.dumps(report, indent=1) + "\n")
    if cfg.write:
        config_path = folder / LOOP_CONFIG_NAME
        LoopConfig.load(config_path).replace(threshold=choice.threshold,
                                             first_threshold=choice.first_threshold).save(config_path)
    best = sorted(choice.policy.items(), key=lambda item: -item[1])[:5]
    print(f"{folder}: threshold {choice.threshold}, round 1 {choice.first_threshold} "
          f"({'written' if cfg.write else 'not written'}); best {cfg.metric} of the rule (round 1, later): "
          + ", ".join(f"({f}, {t:g}) {v:.4f}" for (f, t), v in best)
          + f"; chosen {choice.policy[(choice.first_threshold, choice.threshold)]:.4f} (within {choice.tolerance:.4f}"
          f" of the best, one round on {choice.one_round:.0%} of crops); input {choice.input:.4f}, perfect rule"
          f" {choice.oracle:.4f}, {choice.images} crops")


if __name__ == "__main__":
    main()
