"""Figures from run folders: training curves and the comparison grid of several methods."""

from __future__ import annotations

import json

import pytest
import torch
from test_eval_harness import CountingMethod, make_benchmark

from rar.eval.figures import comparison_grid, plot_training_curves, read_metrics
from rar.eval.harness import evaluate_shard
from rar.core.outputs import MethodOutput
from rar.eval.metrics import MetricSuite
from rar.utils.image_io import load_image


class BrighterMethod(CountingMethod):
    def restore(self, lq: torch.Tensor) -> MethodOutput:
        out = super().restore(lq)
        return MethodOutput((out.images + 0.1).clamp(0, 1), out.rounds, out.labels, out.seconds)


def _train_run(folder, losses, torn: bool = False):
    folder.mkdir(parents=True)
    lines = [json.dumps({"phase": "main", "step": 10 * (i + 1), "loss": v, "lr": 1e-3, "psnr": 20 + i})
             for i, v in enumerate(losses)]
    text = "\n".join(lines) + "\n" + ('{"phase": "main", "st' if torn else "")
    (folder / "metrics.jsonl").write_text(text)
    return folder


def test_training_curves_png(tmp_path):
    a = _train_run(tmp_path / "uir", [0.5, 0.3, 0.2], torn=True)
    b = _train_run(tmp_path / "joint", [0.2, 0.1])
    assert len(read_metrics(a)) == 3  # the torn last line of a killed run is skipped
    out = plot_training_curves({"uir": a, "joint": b}, tmp_path / "fig" / "curves.png")
    image = load_image(out)
    assert image.shape[-1] > 2 * image.shape[-2]  # two panels side by side: loss and psnr
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plot_training_curves({"x": tmp_path / "missing"}, tmp_path / "x.png")
    (a / "metrics.jsonl").write_text('not json\n{"step": 1, "loss": 1.0}\n')
    with pytest.raises(ValueError, match="metrics.jsonl:1"):
        read_metrics(a)


def test_comparison_grid_rows_and_columns(tmp_path):
    bench = make_benchmark(tmp_path / "bench")
    suite = MetricSuite(["psnr"])
    runs = {}
    for label, method in (("identity", CountingMethod()), ("brighter", BrighterMethod())):
        runs[label] = tmp_path / label
        evaluate_shard(bench, method, suite, runs[label], progress=False)
    out = comparison_grid(bench, runs, tmp_path / "grid.png", count=2, height=24)
    grid = load_image(out)
    # 4 columns (LQ | identity | brighter | HQ), each 24 + 4 px wide; header + 2 x (caption + row) high
    assert grid.shape[-1] == 4 * 28
    assert grid.shape[-2] == 20 + 2 * (20 + 24)
    chosen = comparison_grid(bench, runs, tmp_path / "one.png", keys=[bench.items[-1].key], height=24)
    assert load_image(chosen).shape[-2] == 20 + 20 + 24
    with pytest.raises(ValueError, match="not saved by every run"):
        comparison_grid(bench, runs, tmp_path / "bad.png", keys=["nope.png"])
