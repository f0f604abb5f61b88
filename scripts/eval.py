"""Evaluate a restoration method on a benchmark: ``python scripts/eval.py benchmark=NAME method=NAME``.

CPU (the bundled sample benchmark; PSNR/SSIM need no weights)::

    HF_HUB_OFFLINE=1 python scripts/eval.py benchmark=samples_groupA method=identity 'metrics=[psnr,ssim]'
    HF_HUB_OFFLINE=1 python scripts/eval.py benchmark=samples_groupA method=folder method.name=identity_again \
        method.target.root=runs/eval/samples_groupA/identity/images 'metrics=[psnr,ssim]'
    HF_HUB_OFFLINE=1 python scripts/eval.py -m benchmark=samples_groupA,samples_groupB,samples_groupC \
        method=identity 'metrics=[psnr,ssim]' && python scripts/collect.py multirun/eval/<date>

Cluster (all metrics; weights under $TORCH_HOME/hub and the HF cache, see rar/eval/weights.py)::

    accelerate launch --multi_gpu --num_processes 8 scripts/eval.py benchmark=agenticir_groupA \
        method=rar method.target.path=runs/sd35m/joint/model
    # or independent jobs, e.g. a SLURM array; re-running without shard.* afterwards merges every part:
    python scripts/eval.py benchmark=agenticir_groupA method=rar method.target.path=... \
        shard.index=$SLURM_ARRAY_TASK_ID shard.num=8

The run directory (``runs/eval/<benchmark>/<method>``) gets ``results/part-*.jsonl`` (appended per
image; re-running the same command skips finished images), ``images/``, ``images.jsonl``,
``per_combination.csv``, ``summary.{md,csv}``, ``montage.png`` and the resolved ``config.yaml``.
Metric weights are checked before the method is even built; a missing file stops the run with
the list of files and where they go.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
import torch
from accelerate import PartialState
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rar.eval.benchmark import as_benchmark
from rar.eval.harness import evaluate_shard, write_run_reports
from rar.eval.metrics import MetricSuite
from rar.eval.report import summary_markdown
from rar.eval.results import Summary
from rar.utils.cli_errors import one_line_errors
from rar.utils.fingerprint import fingerprint


def _device(choice: str, state: PartialState) -> torch.device:
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" and state.device.type != "cuda":
        raise RuntimeError("device=cuda but no CUDA device is available (use device=auto or device=cpu)")
    if choice not in ("auto", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {choice!r}")
    return state.device


FINGERPRINT_KEYS = ("method", "quantize", "seed")
"""Settings a run directory's results depend on; resuming with different ones is refused."""
FINGERPRINTS_NAME = "method_fingerprints.json"
"""Content digests of the files and folders the method config names (its model folder), per config key."""


def _method_fingerprints(cfg: DictConfig) -> dict[str, str]:
    """``{"method.target.path": digest}`` for every existing file or folder the method's target names."""
    found: dict[str, str] = {}

    def visit(node, key: str) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                visit(value, f"{key}.{name}")
        elif isinstance(node, str) and not key.endswith("_target_") and Path(node).exists():
            found[key] = fingerprint(node)

    visit(OmegaConf.to_container(cfg.method.target, resolve=True), "method.target")
    return found


def _check_resumable(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse to add results to a run directory written with another method or scoring setup."""
    saved_file = run_dir / "config.yaml"
    if not saved_file.is_file():
        return
    saved = OmegaConf.to_container(OmegaConf.load(saved_file))
    current = OmegaConf.to_container(cfg, resolve=True)
    for key in FINGERPRINT_KEYS:
        before, now = saved.get(key), current.get(key)
        if before != now:
            raise ValueError(
                f"{run_dir} holds results made with {key}={before!r}, but this run has {key}={now!r}; "
                "give the run another name (method.name=... or run_dir=...) or delete the folder"
            )
    saved_prints = run_dir / FINGERPRINTS_NAME
    if saved_prints.is_file():
        before_prints = json.loads(saved_prints.read_text())
        for key, digest in _method_fingerprints(cfg).items():
            if before_prints.get(key, digest) != digest:
                raise ValueError(
                    f"{run_dir} holds results of another model: the contents of {key}={OmegaConf.select(cfg, key)} "
                    f"changed since they were made ({saved_prints}); give the run another name or delete the folder"
                )


def run(cfg: DictConfig) -> Summary | None:
    """Evaluate as configured; returns the summary on the main process (``None`` elsewhere)."""
    # cpu=True also without CUDA: otherwise a torchrun/accelerate launch on CPU sees one process per rank
    state = PartialState(cpu=cfg.device == "cpu" or not torch.cuda.is_available())
    if cfg.shard.num is not None:
        shard_index, num_shards = int(cfg.shard.index), int(cfg.shard.num)
    else:
        shard_index, num_shards = state.process_index, state.num_processes
    device = _device(cfg.device, state)
    run_dir = Path(cfg.run_dir)
    _check_resumable(run_dir, cfg)
    torch.manual_seed(cfg.seed)

    benchmark = as_benchmark(cfg.benchmark.name, instantiate(cfg.benchmark.set))
    if cfg.limit is not None:
        benchmark = benchmark.head(int(cfg.limit))
    metric_names = list(cfg.metrics)
    metrics = MetricSuite(  # checks every weight file before anything else is built
        metric_names, device=device, seed=cfg.seed, quantize=cfg.quantize, allow_download=cfg.metrics_download
    )
    method = instantiate(cfg.method.target)
    if hasattr(method, "to"):
        method = method.to(device) or method
    if state.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        staged = run_dir / f"config.yaml.{os.getpid()}"  # atomic: other processes may be reading config.yaml
        staged.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        staged.replace(run_dir / "config.yaml")
        if not (run_dir / FINGERPRINTS_NAME).is_file():  # the first run's model is the one results belong to
            (run_dir / FINGERPRINTS_NAME).write_text(json.dumps(_method_fingerprints(cfg), indent=2) + "\n")

    evaluate_shard(
        benchmark, method, metrics, run_dir, device=device, batch_size=cfg.batch_size,
        shard_index=shard_index, num_shards=num_shards, save_images=cfg.save_images,
        upscale_inputs=cfg.method.upscale_inputs,
        progress=cfg.progress and (state.is_main_process or cfg.shard.num is not None),
    )
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    summary = write_run_reports(benchmark, metric_names, cfg.method.name, run_dir, montage=cfg.montage)
    print(summary_markdown(summary))
    return summary


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    with one_line_errors():
        summary = run(cfg)
    return None if summary is None else summary.overall.metrics[summary.metrics[0]]  # the sweeper's objective


if __name__ == "__main__":
    main()
