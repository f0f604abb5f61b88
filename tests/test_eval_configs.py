"""scripts/eval.py and scripts/collect.py through the real Hydra configs (compose API)."""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rar.eval.benchmark import as_benchmark
from rar.eval.method import IdentityMethod
from rar.eval.weights import MissingWeightsError
from rar.utils.image_io import save_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.stem for p in (REPO / "configs" / "benchmark").glob("*.yaml"))
METHODS = sorted(p.stem for p in (REPO / "configs" / "method").glob("*.yaml"))


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("eval", overrides=overrides)


def _paired_folder(root: Path, lq_dir: str, hq_dir: str, count: int = 2, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for i in range(count):
        hq = torch.rand(3, 16, 16, generator=g)
        save_image(hq, root / hq_dir / f"{i:02d}.png")
        save_image((hq + 0.1 * torch.randn(3, 16, 16, generator=g)).clamp(0, 1), root / lq_dir / f"{i:02d}.png")


def test_expected_benchmarks_and_methods_exist():
    names = {f"agenticir_group{g}" for g in "ABC"} | {f"samples_group{g}" for g in "ABC"} | {"single_average"}
    names |= {"sidd", "kodak24", "div2k_x4", "gopro", "lol", "sots_outdoor", "rain100l", "rain100h", "raindrop"}
    names |= {"udc_toled", "euvp"}
    assert names <= set(BENCHMARKS)
    assert not [b for b in BENCHMARKS if b.startswith(("single_", "unknown_")) and b != "single_average"]  # no aliases
    assert {"identity", "folder", "rar"} <= set(METHODS)


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_every_benchmark_composes_with_every_method(benchmark):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        for method in METHODS:
            cfg = compose("eval", overrides=[f"benchmark={benchmark}", f"method={method}", "run_dir=/tmp/unused"])
            resolved = OmegaConf.to_container(cfg.benchmark, resolve=True)
            assert resolved["name"] and "_target_" in resolved["set"]
            assert "_target_" in cfg.method.target and cfg.method.name == method
    assert cfg.metrics[:6] == ["psnr", "ssim", "lpips", "maniqa", "clipiqa", "musiq"]


def test_rar_method_targets_the_pipeline_loader():
    cfg = _compose(["method=rar", "method.target.path=/models/rar"])
    assert cfg.method.target._target_ == "rar.pipeline.RARPipeline.from_pretrained"
    assert cfg.method.target.path == "/models/rar"


@pytest.mark.parametrize(("group", "combinations"), [("A", 8), ("B", 4), ("C", 4)])
def test_sample_benchmarks_load(group, combinations):
    cfg = _compose([f"benchmark=samples_group{group}", "run_dir=/tmp/unused"])
    benchmark = as_benchmark(cfg.benchmark.name, instantiate(cfg.benchmark.set))
    assert len(benchmark.combinations) == combinations and len(benchmark) == 3 * combinations
    assert all(item.lq.is_file() and item.hq.is_file() for item in benchmark.items)
    assert benchmark.items[0].key.startswith(("d2/", "d3/"))


def test_missing_weights_stop_the_run_before_any_image_is_restored(tmp_path, monkeypatch):
    _paired_folder(tmp_path / "LOL", "eval15/low", "eval15/high")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []
    monkeypatch.setattr(IdentityMethod, "restore", lambda self, lq: calls.append(lq))
    cfg = _compose(["benchmark=lol", f"benchmark.spec.root={tmp_path / 'LOL'}", "method=identity",
                    f"run_dir={tmp_path / 'run'}", "device=cpu", "progress=false"])
    with pytest.raises(MissingWeightsError, match="LPIPS_v0.1_alex") as error:
        _script("eval").run(cfg)
    assert str(tmp_path / "torch" / "hub" / "clip" / "RN50.pt") in str(error.value)
    assert calls == [] and not (tmp_path / "run" / "results").exists()


def test_collect_merges_a_two_job_sweep(tmp_path, capsys):
    _paired_folder(tmp_path / "LOL", "eval15/low", "eval15/high", seed=1)
    _paired_folder(tmp_path / "UDC", "test/LQ", "test/HQ", count=3, seed=2)
    jobs = [
        ["benchmark=lol", f"benchmark.spec.root={tmp_path / 'LOL'}"],
        ["benchmark=udc_toled", f"benchmark.spec.root={tmp_path / 'UDC'}"],
    ]
    sweep = tmp_path / "multirun"
    evaluate = _script("eval")
    for number, overrides in enumerate(jobs):
        overrides = [*overrides, "method=identity", "metrics=[psnr,ssim]"]
        job_dir = sweep / str(number)
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))  # as Hydra's multirun writes
        summary = evaluate.run(_compose([*overrides, f"run_dir={job_dir}", "device=cpu", "progress=false"]))
        assert summary.complete
    (sweep / "2" / ".hydra").mkdir(parents=True)  # a job that died before writing its summary
    (sweep / "2" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["benchmark=gopro"]))

    _script("collect").main([str(sweep)])
    with open(sweep / "collected.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["benchmark"] for r in rows] == ["lol", "udc_toled", ""]
    assert [r["images"] for r in rows] == ["2", "3", ""] and rows[2]["status"] == "no summary.csv"
    assert "benchmark=lol" in rows[0]["overrides"] and float(rows[1]["psnr"]) > 10
    udc = (sweep / "1" / "summary.csv").read_text()
    assert rows[1]["psnr"] in udc
    markdown = (sweep / "collected.md").read_text()
    assert markdown in capsys.readouterr().out  # the script prints the table
    assert "| 1 | benchmark=udc_toled" in markdown and "PSNR↑" in markdown
    for name in ("images.jsonl", "per_combination.csv", "summary.md", "config.yaml", "montage.png"):
        assert (sweep / "0" / name).is_file()


def test_single_average_scores_each_dataset_as_one_unit(tmp_path):
    _paired_folder(tmp_path / "data", "lq", "hq", count=2)
    cfg = _compose(["benchmark=single_average", "run_dir=/tmp/unused"])
    labels = list(cfg.benchmark.set.sets)
    assert labels == ["sidd", "kodak24", "div2k", "gopro", "lol", "sots_outdoor", "rain100", "raindrop"]
    for label in labels:  # point every part at the same tiny paired folder
        cfg.benchmark.parts[label].set = OmegaConf.create({
            "_target_": "rar.data.benchmark_sets.BenchmarkSet.from_spec",
            "spec": {"_target_": "rar.data.specs.DatasetSpec", "name": label, "root": str(tmp_path / "data"),
                     "lq_dir": "lq", "hq_dir": "hq"},
        })
    benchmark = as_benchmark(cfg.benchmark.name, instantiate(cfg.benchmark.set))
    assert benchmark.combinations == tuple(labels) and len(benchmark) == 16
    assert benchmark.items[0].key == "sidd/lq/00.png" and benchmark.items[-1].combination == "raindrop"


def test_resuming_with_another_method_config_is_refused(tmp_path):
    _paired_folder(tmp_path / "LOL", "eval15/low", "eval15/high")
    common = ["benchmark=lol", f"benchmark.spec.root={tmp_path / 'LOL'}", "metrics=[psnr]",
              f"run_dir={tmp_path / 'run'}", "device=cpu", "progress=false", "montage=0"]
    evaluate = _script("eval")
    evaluate.run(_compose([*common, "method=identity"]))
    evaluate.run(_compose([*common, "method=identity", "metrics=[psnr,ssim]"]))  # more metrics: fine
    other = [*common, "method=folder", "method.name=identity", f"method.target.root={tmp_path / 'run' / 'images'}"]
    with pytest.raises(ValueError, match="holds results made with method="):
        evaluate.run(_compose(other))
