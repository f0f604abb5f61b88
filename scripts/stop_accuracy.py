"""The stop rule judged on the model's own rounds: ``python scripts/stop_accuracy.py benchmark=NAME``.

CPU (the committed tiny model; the held-out samples)::

    HF_HUB_OFFLINE=1 python scripts/stop_accuracy.py -m benchmark=samples_groupA,samples_groupB,samples_groupC

Cluster (a trained SD3.5 RAR, before and after joint)::

    python scripts/stop_accuracy.py benchmark=agenticir_groupA model=runs/sd35m/joint/model device=cuda
    python scripts/stop_accuracy.py benchmark=agenticir_groupA model=runs/sd35m/uir/model device=cuda

Every image runs ``rounds`` rounds with every output kept; each round is labelled by whether its
score (``metric``, as the harness scores it) rose, and compared with the stop rule's verdict
(``p_better >= threshold``; by default the model's own thresholds, round 1's apart); each round's
answer is checked for naming at least one degradation the item has (coarse categories,
:mod:`rar.eval.lqa_accuracy`). Writes ``stop_accuracy.json`` (the summary and every image's scores,
p_better and answers) into the run folder and prints the summary.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from rar.eval.benchmark import as_benchmark
from rar.eval.lqa_accuracy import categories, truth_categories
from rar.eval.metrics import MetricSuite, match_reference_size
from rar.eval.stop_accuracy import stop_accuracy
from rar.lqa.evaluation import phrase_set
from rar.pipeline import RARPipeline
from rar.pipeline.round_audit import own_rounds
from rar.utils.image_io import load_image


@hydra.main(version_base="1.3", config_path="../configs", config_name="stop_accuracy")
def main(cfg: DictConfig) -> None:
    loaded = instantiate(cfg.benchmark.set)
    benchmark = as_benchmark(cfg.benchmark.name, loaded)
    degradations = {str(item.lq): item.degradations for item in getattr(loaded, "items", [])}  # a manifest's labels
    suite = MetricSuite([cfg.metric], device=cfg.device)
    pipe = RARPipeline.from_pretrained(cfg.model, device=cfg.device)
    scores, p_better, records, named = [], [], [], []
    for item in benchmark.items:
        lq, hq = load_image(item.lq), load_image(item.hq)
        if cfg.upscale_inputs:  # a 1/4-size input brought to the reference size first, as eval's upscale_inputs
            lq = match_reference_size(lq, tuple(hq.shape[-2:]), item.key)
        (audit,) = own_rounds(pipe, lq[None], rounds=int(cfg.rounds))
        row = torch.tensor([suite.score(image, hq, item.key)[cfg.metric] for image in audit.images])
        scores.append(row)
        p_better.append(audit.p_better)
        truth = truth_categories(degradations.get(str(item.lq), ()))
        hits = [bool(categories(phrase_set(text)) & truth) for text in audit.texts] if truth else []
        named += hits
        records.append({"key": item.key, cfg.metric: row.tolist(), "p_better": audit.p_better.tolist(),
                        "texts": audit.texts, "names_a_present_degradation": hits})
    if cfg.threshold is None:  # the rule the model runs (rar_config.json)
        threshold, first_threshold = pipe.config.threshold, pipe.config.first_threshold
    else:
        threshold, first_threshold = float(cfg.threshold), None
    summary = stop_accuracy(scores, p_better, threshold, first_threshold)
    labels_present = sum(named) / len(named) if named else float("nan")
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stop_accuracy.json").write_text(json.dumps(
        {"benchmark": cfg.benchmark.name, "model": cfg.model, "metric": cfg.metric, "threshold": threshold,
         "first_threshold": first_threshold, "summary": asdict(summary),
         "labels_present": labels_present, "images": records}, indent=1))
    print(f"{cfg.benchmark.name} ({cfg.model}, {cfg.metric}): " + ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in asdict(summary).items())
        + f", labels_present {labels_present:.3f}")


if __name__ == "__main__":
    main()
