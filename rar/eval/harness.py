"""The evaluation loop: restore → score → record, resumable and shardable.

:func:`evaluate_shard` runs one process's share of a benchmark:

1. reads the results already on disk (any shard, any earlier run) and skips every item that has
   all requested metrics; an item with a record and a saved output but missing metrics is
   re-scored from the saved output without restoring it again;
2. for a :class:`~rar.eval.method.StoredOutputs` method, checks that every pending output exists
   (one error listing all missing files) before scoring anything;
3. restores the pending items in batches of equal-size inputs, times the method (CUDA is
   synchronised around the call), scores each output alone, saves it as
   ``images/<key>.png`` and appends its record to the shard's part file;
4. shows a progress bar with running means.

:func:`write_run_reports` merges every part file and writes the reports; it gives the same
tables whatever sharding produced the results (metric values do not depend on batch, order or
process — see ``rar.eval.metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from rar.core.outputs import MethodOutput
from rar.core.timing import synchronize
from rar.eval.benchmark import Benchmark, EvalItem
from rar.eval.method import Method, StoredOutputs
from rar.eval.metrics import MetricSuite, upscale_low_resolution
from rar.eval.report import write_montage, write_reports
from rar.eval.results import (
    ImageResult,
    Summary,
    append_result,
    drop_partial_line,
    part_path,
    read_results,
    summarize,
)
from rar.utils.image_io import load_image, save_image

IMAGES_DIR = "images"


@dataclass
class ShardProgress:
    """What one call of :func:`evaluate_shard` did.

    Attributes:
        items: items in this shard. skipped: already complete. rescored: scored again from a
        saved output (new metrics). restored: run through the method.
    """

    items: int
    skipped: int
    rescored: int
    restored: int


def _image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header."""
    with Image.open(path) as image:
        return image.height, image.width


def _batches(
    items: Sequence[EvalItem], batch_size: int, upscale_inputs: bool = False
) -> Iterator[tuple[list[EvalItem], torch.Tensor]]:
    """Consecutive items with equal LQ sizes, at most ``batch_size`` at a time, with their LQ ``[B,3,h,w]``.

    With ``upscale_inputs`` an LQ exactly 1/4 of its reference size is first brought to that size
    (MATLAB bicubic ×4, clamped: the ×4 rule, applied before the method instead of after it).
    """
    group: list[EvalItem] = []
    images: list[torch.Tensor] = []
    for item in items:
        lq = load_image(item.lq)
        if upscale_inputs:
            lq = upscale_low_resolution(lq, _image_size(item.hq), item.key)
        if images and (len(group) == batch_size or lq.shape != images[0].shape):
            yield group, torch.stack(images)
            group, images = [], []
        group.append(item)
        images.append(lq)
    if group:
        yield group, torch.stack(images)


class _RunningMeans:
    def __init__(self, results: Sequence[ImageResult]) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        for result in results:
            self.add(result)

    def add(self, result: ImageResult) -> None:
        for name, value in result.metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1
        if result.seconds is not None:
            self.sums["s/img"] = self.sums.get("s/img", 0.0) + result.seconds
            self.counts["s/img"] = self.counts.get("s/img", 0) + 1

    def postfix(self) -> dict[str, str]:
        return {name: f"{self.sums[name] / self.counts[name]:.4g}" for name in self.sums}


def evaluate_shard(
    benchmark: Benchmark,
    method: Method | StoredOutputs,
    metrics: MetricSuite,
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    save_images: bool = True,
    progress: bool = True,
    upscale_inputs: bool = False,
) -> ShardProgress:
    """Evaluate shard ``shard_index`` of ``num_shards`` of ``benchmark`` into ``run_dir`` (resumable).

    Args:
        benchmark: items to evaluate. method: a :class:`Method` or :class:`StoredOutputs`.
        metrics: the built metric suite. run_dir: the run directory (results, images, reports).
        device: where LQ batches are placed for ``method.restore``.
        batch_size: most images per ``restore`` call (only equal-size inputs are batched).
        shard_index, num_shards: this process's share (strided over the items).
        save_images: save each output as ``images/<key>.png`` (needed for re-scoring and montage).
        progress: show a tqdm bar.
        upscale_inputs: hand the method low-resolution inputs (exactly 1/4 of the reference size)
            already upscaled ×4 (MATLAB bicubic), for methods trained on upsampled LQ such as RAR's
            UIR (``resize_lq_to_hq``). Off: the method gets the small image and the ×4 rule
            applies to its output.
    """
    if not isinstance(method, (Method, StoredOutputs)):
        raise TypeError(f"method must implement restore(lq) or check(keys)+load(key); got {type(method).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    run_dir, device = Path(run_dir), torch.device(device)
    items = benchmark.shard(shard_index, num_shards)
    known = read_results(run_dir)
    complete, rescore, restore = [], [], []
    for item in items:
        record = known.get(item.key)
        if record is not None and all(name in record.metrics for name in metrics.names):
            complete.append(record)
        elif record is not None and record.output and (run_dir / record.output).is_file():
            rescore.append(item)
        else:
            restore.append(item)
    if isinstance(method, StoredOutputs):
        method.check([item.key for item in restore])
    out_file = part_path(run_dir, shard_index, num_shards)
    drop_partial_line(out_file)
    means = _RunningMeans(complete)
    bar = tqdm(total=len(items), initial=len(complete), disable=not progress, desc=f"{benchmark.name}", unit="img")

    def record(result: ImageResult) -> None:
        append_result(out_file, result)
        means.add(result)
        bar.set_postfix(means.postfix(), refresh=False)
        bar.update(1)

    for item in rescore:
        old = known[item.key]
        output = load_image(run_dir / old.output)
        new = ImageResult.from_dict(vars(old))
        new.metrics = metrics.score(output, load_image(item.hq), item.key)
        record(old.updated(new))

    for group, out, seconds in _restored(method, restore, batch_size, device, upscale_inputs):
        size = len(group)
        for i, item in enumerate(group):
            image = out.images[i].detach().float().cpu()
            hq = load_image(item.hq)
            scores = metrics.score(image, hq, item.key)
            output = ""
            if save_images:
                output = f"{IMAGES_DIR}/{item.output_name}"
                save_image(image, run_dir / output, overwrite=True)
            record(ImageResult(
                key=item.key,
                combination=item.combination,
                metrics=scores,
                seconds=None if seconds is None else seconds / size,
                stage_seconds={stage: value / size for stage, value in out.seconds.items()},
                rounds=int(out.rounds[i]),
                labels=[str(label) for label in out.labels[i]],
                output=output,
                output_size=list(image.shape[-2:]),
                upscaled=tuple(image.shape[-2:]) != tuple(hq.shape[-2:]),
            ))
    bar.close()
    return ShardProgress(items=len(items), skipped=len(complete), rescored=len(rescore), restored=len(restore))


def _restored(
    method: Method | StoredOutputs,
    items: Sequence[EvalItem],
    batch_size: int,
    device: torch.device,
    upscale_inputs: bool,
) -> Iterator[tuple[list[EvalItem], MethodOutput, float | None]]:
    """Yield ``(items, output, method seconds)`` per batch; stored outputs are untimed (``None``)."""
    if isinstance(method, StoredOutputs):
        for item in items:
            yield [item], method.load(item.key), None
        return
    for group, lq in _batches(items, batch_size, upscale_inputs):
        lq = lq.to(device)
        synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            out = method.restore(lq)
        synchronize(device)
        seconds = time.perf_counter() - start
        if out.images.shape[0] != len(group):
            raise ValueError(f"method returned {out.images.shape[0]} images for a batch of {len(group)}")
        yield group, out, seconds


def write_run_reports(
    benchmark: Benchmark, metric_names: Sequence[str], method_name: str, run_dir: str | Path, montage: int = 4
) -> Summary:
    """Merge all results under ``run_dir`` and write ``images.jsonl``, the tables and the montage."""
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    summary = summarize(benchmark, results, metric_names, method_name)
    write_reports(summary, benchmark, results, run_dir)
    if montage > 0:
        write_montage(benchmark, results, run_dir, count=montage)
    return summary
