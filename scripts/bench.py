"""Benchmark RAR: ``python scripts/bench.py [experiment=NAME] [model=FOLDER] [device=cuda] ...``.

Parts (``parts=[...]``):

* ``inference``: per-image latency split into preprocess, encode, assess, restore, compare and
  decode, rounds, images/s and peak memory, for each of ``inference.batch_sizes``
  (:mod:`rar.perf.inference`);
* ``training``: step time, samples/s, analytic model FLOPs and MFU of each of
  ``training.stages`` (:mod:`rar.perf.training`, :mod:`rar.perf.flops`);
* ``degradations``: synthesis throughput of groups A/B/C (:mod:`rar.perf.degradations`).

Models: a RAR folder (``model=models/tiny``) or, by default, the model groups of the config with
random weights — ``experiment=sd35_medium`` / ``sd35_large`` build SD3.5's VAE and MMDiT and the
Vicuna-7B-size DepictQA from their architectures (:mod:`rar.perf.models`), no weights needed::

    python scripts/bench.py                                       # tiny, CPU, all parts
    python scripts/bench.py experiment=sd35_large device=cuda dtype=bfloat16 resolution=512 \\
        'parts=[inference]' inference.loop.steps_per_round=10 inference.loop.stop=fixed
    python scripts/bench.py model=models/tiny resolution=1024 'parts=[inference]' \\
        'inference.batch_sizes=[1]' inference.loop.stop=fixed repeats=1   # tiled: 1024 px > the tiny UIR's 256
    python scripts/bench.py experiment=sd35_medium device=cuda resolution=512 'parts=[training]' \\
        training.mixed_precision=bf16 training.batch=8 'training.stages=[uir]'

Warm-up calls are excluded; CUDA is synchronised around timed work. Results go to
``<run dir>/bench.json`` and a table is printed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rar.core.outputs import STAGES
from rar.lqa.tiny import save_tiny_depictqa
from rar.perf.degradations import bench_degradations
from rar.perf.inference import bench_inference
from rar.perf.training import REQUIRED_MODULES, bench_training, largest_batch
from rar.pipeline.config import LoopConfig
from rar.pipeline.model_folder import parse_dtype
from rar.pipeline.pipeline import RARPipeline
from rar.pipeline.tiling import Tiling
from rar.testing import save_tiny_autoencoder

log = logging.getLogger("bench")
PARTS = ("inference", "training", "degradations")
RANDOM_TARGETS = {
    "rar.uir.autoencoders.build_kl_autoencoder": "rar.perf.models.random_kl_autoencoder",
    "rar.lqa.factory.build_depictqa": "rar.perf.models.random_depictqa",
}
"""Loader → the builder of the same architecture with random weights (same arguments)."""


def random_modules(
    cfg: DictConfig, device: torch.device, names: Sequence[str] = ("autoencoder", "uir", "lqa", "text_adapter"),
) -> dict[str, torch.nn.Module]:
    """The config's modules ``names`` with random weights, built on ``device``."""
    modules = {}
    for name in names:
        node = OmegaConf.to_container(cfg[name], resolve=True)
        node["_target_"] = RANDOM_TARGETS.get(node["_target_"], node["_target_"])
        if name == "uir":  # the preset named by `config`; checkpointing is the training bench's switch
            node["pretrained"], node["gradient_checkpointing"] = None, False
        with torch.device(device):
            modules[name] = instantiate(node, _convert_="all")
    return {name: m.to(device) for name, m in modules.items()}


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MiB"


def print_inference(rows, max_new_tokens: int | None) -> None:
    head = " ".join(f"{s:>10}" for s in STAGES)
    cap = "" if max_new_tokens is None else f", LQA answers capped at {max_new_tokens} new tokens"
    print(f"\ninference (seconds per image{cap})\n{'variant':<12} {'batch':>5} {head} {'latency':>10} "
          f"{'img/s':>8} {'s/MP':>8} {'tiles':>5} {'rounds':>6} {'TFLOP/img':>10} {'MFU':>7} {'peak mem':>12}")
    for variant, r in rows:
        split = " ".join(f"{r.seconds_per_image.get(s, 0.0):>10.4f}" for s in STAGES)
        mfu = "n/a" if r.mfu is None else f"{100 * r.mfu:.1f}%"
        print(f"{variant:<12} {r.batch:>5} {split} {r.latency_per_image:>10.4f} {r.images_per_second:>8.2f} "
              f"{r.seconds_per_megapixel:>8.2f} {r.tiles:>5} {r.rounds:>6.2f} {r.flops_per_image / 1e12:>10.4f} {mfu:>7} "
              f"{_mib(r.peak_memory_bytes):>12}")


def compare_lines(results: dict, previous: dict) -> list[str]:
    """One line per inference row / training stage also found in ``previous`` (an earlier
    ``bench.json``): before → after and the speed-up."""
    lines = []
    before = {(r["variant"], r["batch"]): r for r in previous.get("inference", [])}
    for r in results.get("inference", []):
        old = before.get((r["variant"], r["batch"]))
        if old:
            lines.append(f"inference {r['variant']} batch {r['batch']}: {old['latency_per_image']:.4f} -> "
                         f"{r['latency_per_image']:.4f} s/image ({old['latency_per_image'] / r['latency_per_image']:.2f}x)")
    steps = {r["stage"]: r for r in previous.get("training", [])}
    for r in results.get("training", []):
        old = steps.get(r["stage"])
        if old:
            lines.append(f"training {r['stage']}: {old['step_seconds']:.4f} -> {r['step_seconds']:.4f} s/step "
                         f"({old['step_seconds'] / r['step_seconds']:.2f}x)")
    return lines


def print_training(rows) -> None:
    print(f"\ntraining\n{'stage':<14} {'batch':>5} {'s/step':>8} {'samples/s':>10} {'TFLOP/step':>11} {'MFU':>7} "
          f"{'peak mem':>12}")
    for r in rows:
        tflop = "n/a" if r.flops_per_step is None else f"{r.flops_per_step / 1e12:.3f}"
        mfu = "n/a" if r.mfu is None else f"{100 * r.mfu:.1f}%"
        print(f"{r.stage:<14} {r.batch:>5} {r.step_seconds:>8.3f} {r.samples_per_second:>10.2f} {tflop:>11} "
              f"{mfu:>7} {_mib(r.peak_memory_bytes):>12}")


def print_degradations(result) -> None:
    print(f"\ndegradations ({result.size}x{result.size}, batch {result.batch}, {result.device})")
    width = max(len(r.combination) for r in result.rows)
    for r in result.rows:
        print(f"  {r.group:<6} {r.combination:<{width}} {r.images_per_second:>8.2f} img/s")
    for group, ips in result.groups.items():
        print(f"  group {group}: {ips:.2f} img/s")


def run(cfg: DictConfig) -> dict:
    """Run the configured parts; returns the JSON-able results (also written to ``bench.json``)."""
    parts = list(cfg.parts)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown bench parts {unknown}; known: {list(PARTS)}")
    torch.manual_seed(cfg.seed)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    out_dir = Path(cfg.get("out_dir") or hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    results: dict = {"config": OmegaConf.to_container(cfg, resolve=True), "device_name": _device_name(device),
                     "threads": torch.get_num_threads()}
    if {"inference", "training"} & set(parts) and cfg.model is None:  # tiny stand-ins the config names, if missing
        tiny = Path(cfg.tiny_dir)
        if str(cfg.lqa.get("llm_pretrained", "")).startswith(str(tiny)) and not (tiny / "depictqa").is_dir():
            save_tiny_depictqa(tiny / "depictqa")
        if str(cfg.autoencoder.get("pretrained", "")).startswith(str(tiny)) and not (tiny / "autoencoder").is_dir():
            save_tiny_autoencoder(tiny / "autoencoder")
    if "inference" in parts:
        loop = LoopConfig(**OmegaConf.to_container(cfg.inference.loop, resolve=True))
        fast = OmegaConf.to_container(cfg.inference.fast, resolve=True)
        if cfg.model is not None:
            pipe = RARPipeline.from_pretrained(cfg.model, device=device, dtype=cfg.dtype, fast=fast)
            pipe.with_config(**loop.as_dict())
        else:
            pipe = RARPipeline(**random_modules(cfg, device), config=loop).to(device=device, dtype=parse_dtype(cfg.dtype))
            pipe.set_fast_paths(fast)
        if cfg.inference.max_new_tokens is not None:  # random LQAs never stop early: cap them at a trained length
            pipe.lqa.max_new_tokens = int(cfg.inference.max_new_tokens)
        if cfg.inference.get("tile") is not None:  # image pixels -> latent pixels
            pipe.tiling = Tiling(tile=int(cfg.inference.tile) // pipe.autoencoder.stride)
        variants = {"base": {}, **OmegaConf.to_container(cfg.inference.variants, resolve=True)}
        rows = []
        for variant, overrides in variants.items():  # same models, other fast paths
            pipe.set_fast_paths({**fast, **overrides})
            rows += [(variant, bench_inference(pipe, b, cfg.resolution, cfg.repeats, cfg.warmup))
                     for b in cfg.inference.batch_sizes]
        results["inference"] = [{"variant": v, **dataclasses.asdict(r)} for v, r in rows]
        print_inference(rows, cfg.inference.max_new_tokens)
        del pipe  # free the inference copy before the training one is built
    if "training" in parts:
        if cfg.model is not None:
            raise ValueError("the training benchmark builds random-init modules of the config: leave model=null")
        t = cfg.training
        needed = sorted({name for stage in t.stages for name in REQUIRED_MODULES.get(stage, ())})
        modules = random_modules(cfg, device, needed)  # only what the stages use (memory)
        def run_stage(stage: str, batch: int, checkpointing: bool, steps: int = cfg.repeats, warmup: int = cfg.warmup):
            return bench_training(stage, modules, batch=batch, resolution=cfg.resolution, device=device,
                                  mixed_precision=t.mixed_precision, steps=steps, warmup=warmup,
                                  gradient_checkpointing=checkpointing, fused_adamw=t.fused_adamw,
                                  attention=t.attention, seed=cfg.seed, compile_blocks=t.compile_blocks)

        rows = [run_stage(stage, t.batch, t.gradient_checkpointing) for stage in t.stages]
        results["training"] = [dataclasses.asdict(r) for r in rows]
        print_training(rows)
        if t.find_max_batch:
            if device.type != "cuda":
                raise ValueError("training.find_max_batch searches for the batch that fills GPU memory: use device=cuda")
            results["max_batch"] = {
                f"{stage}/{'checkpointing' if gc else 'no_checkpointing'}":
                    largest_batch(lambda b, s=stage, g=gc: run_stage(s, b, g, steps=1, warmup=1), start=t.batch)
                for stage in t.stages for gc in (False, True)
            }
            print("\nlargest batch per stage:", *(f"{k}: {v}" for k, v in results["max_batch"].items()), sep="\n  ")
    if "degradations" in parts:
        d = cfg.degradations
        result = bench_degradations(d.size, d.batch, cfg.repeats, device, cfg.seed, list(d.groups))
        results["degradations"] = dataclasses.asdict(result)
        print_degradations(result)
    if cfg.compare_to is not None:
        lines = compare_lines(results, json.loads(Path(cfg.compare_to).read_text()))
        results["compared_to"] = {"file": str(cfg.compare_to), "lines": lines}
        print(f"\ncompared with {cfg.compare_to}:", *lines or ["(no matching rows)"], sep="\n  ")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    log.info("results written to %s", out_dir / "bench.json")
    return results


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@hydra.main(config_path="../configs", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
