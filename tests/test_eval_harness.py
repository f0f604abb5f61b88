"""The evaluation loop: aggregation, resume, sharding, the folder method, what gets recorded."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

from rar.core.outputs import MethodOutput
from rar.eval.benchmark import Benchmark, EvalItem
from rar.eval.folder import FolderMethod
from rar.eval.harness import evaluate_shard, write_run_reports
from rar.eval.metrics import MetricSuite, SizeMismatchError
from rar.eval.results import ImageResult, part_path, read_results
from rar.utils.image_io import save_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class CountingMethod:
    """Returns the input, a fixed number of rounds and labels, and fake stage timings."""

    def __init__(self, size_factor: int = 1) -> None:
        self.calls = 0
        self.images = 0
        self.size_factor = size_factor

    def restore(self, lq: torch.Tensor) -> MethodOutput:
        self.calls += 1
        self.images += lq.shape[0]
        batch = lq.shape[0]
        out = lq if self.size_factor == 1 else lq[..., :: self.size_factor, :: self.size_factor]
        return MethodOutput(
            images=out.clone(),
            rounds=[2] * batch,
            labels=[["noise", "clean"] for _ in range(batch)],
            seconds={"assess": 0.5 * batch, "restore": 1.0 * batch},
        )


@pytest.fixture(scope="module")
def fidelity() -> MetricSuite:
    return MetricSuite(["psnr"])


def make_benchmark(root: Path, name: str = "toy") -> Benchmark:
    """Combination ``a``: 3 noisy 24x24 images; combination ``b``: 2 images whose LQ is 1/4 size."""
    g = torch.Generator().manual_seed(0)
    items = []
    for combination, count, lq_size in (("a", 3, 24), ("b", 2, 6)):
        for i in range(count):
            hq = torch.rand(3, 24, 24, generator=g)
            lq = hq + 0.05 * torch.randn(3, 24, 24, generator=g)
            if lq_size != 24:
                lq = torch.nn.functional.avg_pool2d(lq[None], 4)[0]
            key = f"d2/{combination}/img{i}.png"
            save_image(hq, root / "HQ" / f"{combination}{i}.png", overwrite=True)
            save_image(lq.clamp(0, 1), root / "LQ" / key, overwrite=True)
            hq_file = root / "HQ" / f"{combination}{i}.png"
            items.append(EvalItem(key=key, lq=root / "LQ" / key, hq=hq_file, combination=combination))
    return Benchmark(name, tuple(items), ("a", "b"))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_aggregation_is_per_combination_then_unweighted_mean(tmp_path):
    items = [EvalItem(f"c1/{i}.png", tmp_path / "x", tmp_path / "y", "c1") for i in range(3)]
    items.append(EvalItem("c2/0.png", tmp_path / "x", tmp_path / "y", "c2"))
    benchmark = Benchmark("hand", tuple(items), ("c1", "c2"))
    part = part_path(tmp_path, 0, 1)
    part.parent.mkdir(parents=True)
    records = [("c1/0.png", "c1", 10.0, 1.0, 1), ("c1/1.png", "c1", 20.0, 2.0, 2), ("c1/2.png", "c1", 30.0, 3.0, 3),
               ("c2/0.png", "c2", 40.0, 6.0, 0)]
    part.write_text("".join(
        ImageResult(key=k, combination=c, metrics={"psnr": p, "ssim": p / 100}, seconds=s, rounds=r,
                    stage_seconds={"restore": s / 2}).to_json() + "\n"
        for k, c, p, s, r in records
    ))
    summary = write_run_reports(benchmark, ["psnr", "ssim"], "hand", tmp_path, montage=0)
    assert [row.metrics["psnr"] for row in summary.rows] == [20.0, 40.0]
    assert summary.overall.metrics["psnr"] == 30.0  # (20 + 40) / 2, not the image mean 25
    assert summary.overall.metrics["ssim"] == pytest.approx(0.30)
    assert summary.overall.seconds == 3.0 and summary.overall.rounds == 1.5  # means over images
    assert summary.overall.stage_seconds == {"restore": 1.5}
    per_combination = _csv(tmp_path / "per_combination.csv")
    rows = [(r["combination"], r["images"], float(r["psnr"])) for r in per_combination]
    assert rows == [("c1", "3", 20.0), ("c2", "1", 40.0)]
    row = _csv(tmp_path / "summary.csv")[0]
    assert float(row["psnr"]) == 30.0 and row["images"] == "4" and float(row["seconds_restore"]) == 1.5
    markdown = (tmp_path / "summary.md").read_text()
    assert "| hand | 30.00 | 0.3000 | 3.000 | 1.50 |" in markdown and "| restore | 1.500 |" in markdown
    assert [json.loads(line)["key"] for line in (tmp_path / "images.jsonl").read_text().splitlines()] == [
        i.key for i in items
    ]


def test_resume_skips_scored_images(tmp_path, fidelity):
    benchmark = make_benchmark(tmp_path / "data")
    method = CountingMethod()
    run = tmp_path / "run"
    first = evaluate_shard(benchmark, method, fidelity, run, progress=False)
    assert (first.restored, method.images) == (5, 5)
    second = evaluate_shard(benchmark, method, fidelity, run, progress=False)
    assert (second.skipped, second.restored, method.images) == (5, 0, 5)
    part = part_path(run, 0, 1)  # a run killed while writing its last record
    lines = part.read_text().splitlines()
    part.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    third = evaluate_shard(benchmark, method, fidelity, run, progress=False)
    assert (third.skipped, third.restored, method.images) == (4, 1, 6)
    assert len(read_results(run)) == 5


def test_added_metric_is_scored_from_saved_outputs(tmp_path, fidelity):
    benchmark = make_benchmark(tmp_path / "data")
    method = CountingMethod()
    run = tmp_path / "run"
    evaluate_shard(benchmark, method, fidelity, run, progress=False)
    progress = evaluate_shard(benchmark, method, MetricSuite(["psnr", "ssim"]), run, progress=False)
    assert (progress.rescored, progress.restored, method.calls) == (5, 0, 5)
    results = read_results(run)
    assert all(set(r.metrics) == {"psnr", "ssim"} and r.rounds == 2 for r in results.values())


def test_shards_merge_into_the_single_process_report(tmp_path, fidelity):
    benchmark = make_benchmark(tmp_path / "data")
    evaluate_shard(benchmark, CountingMethod(), fidelity, tmp_path / "single", progress=False)
    methods = [CountingMethod(), CountingMethod()]
    for index, method in enumerate(methods):
        evaluate_shard(benchmark, method, fidelity, tmp_path / "sharded", shard_index=index, num_shards=2,
                       progress=False)
    assert [m.images for m in methods] == [3, 2]
    assert len(list((tmp_path / "sharded" / "results").glob("part-*.jsonl"))) == 2
    single = write_run_reports(benchmark, ["psnr"], "m", tmp_path / "single", montage=0)
    sharded = write_run_reports(benchmark, ["psnr"], "m", tmp_path / "sharded", montage=0)
    assert [r.metrics for r in sharded.rows] == [r.metrics for r in single.rows]
    assert sharded.overall.metrics == single.overall.metrics and sharded.complete
    assert (tmp_path / "sharded" / "per_combination.csv").read_text().splitlines()[0] == (
        tmp_path / "single" / "per_combination.csv"
    ).read_text().splitlines()[0]


def test_folder_method_rescores_saved_outputs_and_lists_missing_ones(tmp_path, fidelity):
    benchmark = make_benchmark(tmp_path / "data")
    evaluate_shard(benchmark, CountingMethod(), fidelity, tmp_path / "live", progress=False)
    live = read_results(tmp_path / "live")
    progress = evaluate_shard(benchmark, FolderMethod(tmp_path / "live" / "images"), fidelity, tmp_path / "stored",
                              progress=False)
    stored = read_results(tmp_path / "stored")
    assert progress.restored == 5
    assert {k: r.metrics for k, r in stored.items()} == {k: r.metrics for k, r in live.items()}
    assert all(r.seconds is None for r in stored.values())
    assert stored["d2/b/img0.png"].upscaled and stored["d2/b/img0.png"].output_size == [6, 6]

    (tmp_path / "live" / "images" / "d2" / "a" / "img1.png").unlink()
    (tmp_path / "live" / "images" / "d2" / "b" / "img0.png").unlink()
    with pytest.raises(FileNotFoundError) as error:
        evaluate_shard(benchmark, FolderMethod(tmp_path / "live" / "images"), fidelity, tmp_path / "missing",
                       progress=False)
    assert "2 of 5 outputs missing" in str(error.value)
    assert "d2/a/img1.png" in str(error.value) and "d2/b/img0.png" in str(error.value)
    assert not (tmp_path / "missing" / "results").exists()  # nothing was scored


def test_folder_method_matches_by_stem(tmp_path):
    save_image(torch.rand(3, 8, 8), tmp_path / "out" / "nested" / "0001.png")
    method = FolderMethod(tmp_path / "out", match="stem")
    method.check(["input/0001.png"])
    assert method.load("input/0001.png").images.shape == (1, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="input/0002.png"):
        method.check(["input/0001.png", "input/0002.png"])


def test_records_hold_rounds_labels_and_stage_seconds_per_image(tmp_path, fidelity):
    benchmark = make_benchmark(tmp_path / "data")
    method = CountingMethod()
    evaluate_shard(benchmark, method, fidelity, tmp_path / "run", batch_size=2, progress=False)
    assert method.calls == 3  # a: [2, 1] (batch limit), b: [2] (other size)
    record = read_results(tmp_path / "run")["d2/a/img0.png"]
    assert record.rounds == 2 and record.labels == ["noise", "clean"]
    assert record.stage_seconds == {"assess": 0.5, "restore": 1.0}  # batch totals / batch size
    assert record.output == "images/d2/a/img0.png" and (tmp_path / "run" / record.output).is_file()
    summary = write_run_reports(benchmark, ["psnr"], "counting", tmp_path / "run", montage=2)
    assert summary.overall.rounds == 2.0
    assert (tmp_path / "run" / "montage.png").is_file()
    assert "| assess | 0.500 |" in (tmp_path / "run" / "summary.md").read_text()


def test_wrong_output_size_names_the_item(tmp_path, fidelity):
    benchmark = make_benchmark(tmp_path / "data")
    with pytest.raises(SizeMismatchError, match=r"d2/a/img0.png: output is 12x12 but the reference is 24x24"):
        evaluate_shard(benchmark, CountingMethod(size_factor=2), fidelity, tmp_path / "run", progress=False)


def test_benchmark_rejects_clashing_outputs_and_shards_stride(tmp_path):
    with pytest.raises(ValueError, match="share the output file"):
        clash = (EvalItem("a/1.jpg", tmp_path, tmp_path, "a"), EvalItem("a/1.png", tmp_path, tmp_path, "a"))
        Benchmark("x", clash, ("a",))
    benchmark = make_benchmark(tmp_path / "data")
    shards = [benchmark.shard(i, 2) for i in range(2)]
    assert sorted(i.key for s in shards for i in s) == sorted(i.key for i in benchmark.items)
    assert [i.key for i in benchmark.head(1).items] == ["d2/a/img0.png", "d2/b/img0.png"]


def test_upscale_inputs_hands_the_method_low_resolution_inputs_at_reference_size(tmp_path, fidelity):
    benchmark = make_benchmark(tmp_path / "data")
    small, big = CountingMethod(), CountingMethod()
    evaluate_shard(benchmark, small, fidelity, tmp_path / "small", batch_size=8, progress=False)
    evaluate_shard(benchmark, big, fidelity, tmp_path / "big", batch_size=8, progress=False, upscale_inputs=True)
    assert small.calls == 2 and big.calls == 1  # 1/4-size inputs now match the others' size: one batch
    before, after = read_results(tmp_path / "small"), read_results(tmp_path / "big")
    assert before["d2/b/img0.png"].upscaled and not after["d2/b/img0.png"].upscaled
    assert after["d2/b/img0.png"].output_size == [24, 24]
    for key in before:  # the identity either way: the same x4 bicubic, applied before instead of after
        assert after[key].metrics["psnr"] == pytest.approx(before[key].metrics["psnr"], abs=0.05)
