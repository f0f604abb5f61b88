"""Distributed runs: sharded evaluation (2 gloo ranks via accelerate launch, 2 "machines", or
independent shard jobs) gives the single-process report with each process doing only its share;
the SLURM sweep presets; the accelerate configs."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import submitit.slurm.slurm
import torch
from accelerate.commands.launch import (
    _validate_launch_command,  # what `accelerate launch` runs before it picks a launcher
    launch_command_parser,
)
from helpers import ROOT, load_script
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rar.eval.benchmark import as_benchmark
from rar.training.build import build_stage

BENCHMARK = "samples_groupB"
TIMING = "seconds"  # column prefix / fields that differ between any two runs
# what users run; resolves to the CPU here (and must then still make the ranks a gloo group)
LAUNCH_DEVICE = "cpu" if torch.cuda.is_available() else "auto"


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}


def _overrides(method: str, limit: int | None = None) -> list[str]:
    model = [f"method.target.path={ROOT / 'models' / 'tiny'}"] if method == "rar" else []
    return [f"benchmark={BENCHMARK}", f"benchmark.root={ROOT / 'data' / 'benchmarks' / 'samples'}",
            f"method={method}", *model, "metrics=[psnr,ssim]", "progress=false", "montage=0",
            f"limit={limit or 'null'}"]


def _evaluate_here(run_dir: Path, overrides: list[str]):
    """scripts/eval.py's ``run`` in this process (one process, CPU)."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("eval", overrides=[*overrides, f"run_dir={run_dir}", "device=cpu"])
    return load_script("eval").run(cfg)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, check=False, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _untimed_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if not k.startswith(TIMING)} for row in csv.DictReader(handle)]


def _untimed_records(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "stage_seconds")} for r in records]


def _part_keys(run_dir: Path) -> dict[str, list[str]]:
    return {part.name: [json.loads(line)["key"] for line in part.read_text().splitlines()]
            for part in sorted((run_dir / "results").glob("part-*.jsonl"))}


def _shard_keys(limit: int | None, num_shards: int) -> list[list[str]]:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("eval", overrides=[f"benchmark={BENCHMARK}", "run_dir=/tmp/unused"])
    benchmark = as_benchmark(cfg.benchmark.name, instantiate(cfg.benchmark.set))
    if limit is not None:
        benchmark = benchmark.head(limit)
    return [[item.key for item in benchmark.shard(i, num_shards)] for i in range(num_shards)]


def _assert_same_report(single: Path, sharded: Path) -> None:
    for table in ("summary.csv", "per_combination.csv"):
        assert _untimed_csv(sharded / table) == _untimed_csv(single / table), table
    assert _untimed_records(sharded / "images.jsonl") == _untimed_records(single / "images.jsonl")
    for record in _untimed_records(single / "images.jsonl"):
        assert (sharded / record["output"]).read_bytes() == (single / record["output"]).read_bytes()


@pytest.mark.parametrize("limit", [1, pytest.param(None, marks=pytest.mark.slow)])
def test_two_gloo_processes_give_the_single_process_report(tmp_path, limit):
    launch = [sys.executable, "-m", "accelerate.commands.launch",
              "--config_file", str(ROOT / "configs" / "accelerate" / "cpu_2proc.yaml")]
    _evaluate_here(tmp_path / "single", _overrides("rar", limit))
    sharded_out = _run([*launch, str(ROOT / "scripts" / "eval.py"), *_overrides("rar", limit),
                        f"hydra.run.dir={tmp_path / 'sharded'}", f"device={LAUNCH_DEVICE}"])

    _assert_same_report(tmp_path / "single", tmp_path / "sharded")
    summary = _untimed_csv(tmp_path / "sharded" / "summary.csv")[0]
    assert summary["images"] == summary["expected_images"] == str(4 * (limit or 3))
    assert float(summary["mean_rounds"]) >= 1  # the loop ran: assess, restore, re-assess
    assert sharded_out.count(f"# {BENCHMARK} — rar") == 1  # only rank 0 writes and prints the report
    assert _part_keys(tmp_path / "single") == {"part-000-of-001.jsonl": _shard_keys(limit, 1)[0]}
    shards = _shard_keys(limit, 2)
    parts = _part_keys(tmp_path / "sharded")
    assert parts == {"part-000-of-002.jsonl": shards[0], "part-001-of-002.jsonl": shards[1]}
    assert not set(shards[0]) & set(shards[1]) and all(shards)


@pytest.mark.slow
def test_two_machines_launch_flags_give_the_single_process_report(tmp_path):
    """The README's multi-node command, as 2 "machines" x 1 process on this host."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _evaluate_here(tmp_path / "single", _overrides("identity"))
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch",
         "--config_file", str(ROOT / "configs" / "accelerate" / "cpu_2proc.yaml"), "--num_machines", "2",
         "--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
         "--main_process_port", str(port), str(ROOT / "scripts" / "eval.py"), *_overrides("identity"),
         f"hydra.run.dir={tmp_path / 'sharded'}", f"device={LAUNCH_DEVICE}"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) for rank in range(2)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert [out.count(f"# {BENCHMARK} — identity") for out in outputs] == [1, 0]
    assert sorted(_part_keys(tmp_path / "sharded")) == ["part-000-of-002.jsonl", "part-001-of-002.jsonl"]
    _assert_same_report(tmp_path / "single", tmp_path / "sharded")


def test_independent_shard_jobs_then_a_merge_run_give_the_single_job_report(tmp_path):
    def run(run_dir: Path, *extra: str):
        return _evaluate_here(run_dir, [*_overrides("identity"), *extra])

    single = run(tmp_path / "single")
    for index in range(3):  # e.g. a SLURM array: shard.index=$SLURM_ARRAY_TASK_ID shard.num=3
        partial = run(tmp_path / "sharded", f"shard.index={index}", "shard.num=3")
        assert partial.overall.images == 4 * (index + 1) and partial.complete == (index == 2)
    assert _part_keys(tmp_path / "sharded") == {
        f"part-{i:03d}-of-003.jsonl": keys for i, keys in enumerate(_shard_keys(None, 3))}
    merged = run(tmp_path / "sharded")  # no shard.*: every item is already scored, only the reports are written
    assert merged.complete and merged.overall.metrics == single.overall.metrics
    assert [row.metrics for row in merged.rows] == [row.metrics for row in single.rows]
    assert not (tmp_path / "sharded" / "results" / "part-000-of-001.jsonl").exists()  # nothing was re-scored
    _assert_same_report(tmp_path / "single", tmp_path / "sharded")
    config = OmegaConf.load(tmp_path / "sharded" / "config.yaml")
    assert config.shard.num is None


SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


@pytest.mark.parametrize(("config", "preset", "extra"), [("eval", "slurm_eval", []),
                                                         ("train", "slurm_train", ["stage=uir"])])
def test_slurm_presets_submit_an_sbatch_array(tmp_path, monkeypatch, config, preset, extra):
    bin_dir = tmp_path / "bin"  # submitit needs srun on PATH and reads the job id from sbatch's answer
    bin_dir.mkdir()
    for name, body in (("srun", "exit 0"), ("sbatch", "echo Submitted batch job 4242")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_PARTITION", "gpu-long")
    monkeypatch.setenv("SBATCH_ACCOUNT", "proj42")
    monkeypatch.setattr(submitit.slurm.slurm.SlurmJob, "results", lambda job: [job.job_id])  # nothing runs

    sweep = tmp_path / "sweep"
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config, overrides=[f"hydra/launcher={preset}", f"hydra.sweep.dir={sweep}", *extra],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == SLURM_LAUNCHER
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=print, config=cfg)
    assert launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0) == ["4242_0", "4242_1"]

    sbatch = (sweep / ".submitit" / "4242" / "4242_submission.sh").read_text()
    for line in ("--array=0-1%2", "--partition=gpu-long", "--account=proj42", "--gpus-per-node=1",
                 "--ntasks-per-node=1", f"--time={cfg.hydra.launcher.timeout_min}"):
        assert f"#SBATCH {line}\n" in sbatch
    submitted = [submitit.core.utils.DelayedSubmission.load(sweep / ".submitit" / f"4242_{i}" /
                                                             f"4242_{i}_submitted.pkl") for i in range(2)]
    assert [job.args[0] for job in submitted] == [["seed=1"], ["seed=2"]]


def test_submitit_local_sweep_runs_each_job(tmp_path):
    sweep = tmp_path / "sweep"
    _run([sys.executable, str(ROOT / "scripts" / "eval.py"), "-m", "hydra/launcher=submitit_local",
          *_overrides("identity"), "limit=1,2", "device=cpu", f"hydra.sweep.dir={sweep}"])
    images = [_untimed_csv(sweep / str(job) / "summary.csv")[0]["images"] for job in range(2)]
    assert images == ["4", "8"]
    logs = sorted(path.name for path in (sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # two submitit jobs, each in its own process


@pytest.mark.parametrize(("name", "kind", "processes"), [
    ("cpu_2proc", "multi_gpu", 2), ("ddp", "multi_gpu", 8), ("fsdp", "use_fsdp", 8),
    ("deepspeed_zero2", "use_deepspeed", 8),
])
def test_accelerate_configs_pass_accelerate_launch_validation(name, kind, processes):
    path = ROOT / "configs" / "accelerate" / f"{name}.yaml"
    args = launch_command_parser().parse_args(["--config_file", str(path), "scripts/train.py"])
    args, defaults, _ = _validate_launch_command(args)
    assert getattr(args, kind) and args.num_processes == processes
    # multi_gpu/use_fsdp/use_deepspeed without --cpu: a torchrun-style launcher starting num_processes ranks
    assert not args.cpu
    if name == "deepspeed_zero2":
        assert defaults.deepspeed_config["zero_stage"] == 2
    if name == "fsdp":
        assert defaults.fsdp_config["fsdp_version"] == 2


@pytest.mark.parametrize("overrides", [["stage=joint"], ["stage=uir", "condition=lqa"]])
def test_fsdp_wrap_classes_exist_in_the_stages_it_is_meant_for(tiny_dir, overrides):
    fsdp = OmegaConf.load(ROOT / "configs" / "accelerate" / "fsdp.yaml").fsdp_config
    wrap = fsdp.fsdp_transformer_layer_cls_to_wrap.split(",")
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"tiny_dir={tiny_dir}", "run_dir=/tmp/unused"])
    stage, _ = build_stage(cfg)
    classes = {type(module).__name__ for module in stage.modules()}
    assert set(wrap) <= classes  # accelerate's FSDP2 wrapping raises on a listed class the model lacks
