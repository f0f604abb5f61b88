"""Per-image results on disk, and their aggregation (per combination, then the group).

Each evaluation process appends one JSON line per scored image to its own part file,
``<run_dir>/results/part-<index>-of-<num>.jsonl``, and flushes it, so a killed run loses at most
the image in flight and a re-run skips everything already there. Reading merges every part file
(whatever sharding wrote them): for a key seen twice, the later record wins field by field and
metric values are united, so adding a metric to a finished run scores only that metric.

Aggregation follows AgenticIR: per image → mean per combination → the group score is the
**unweighted** mean of the combination means. Seconds per image and rounds are means over all
images (every image weighs the same).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rar.eval.benchmark import Benchmark

RESULTS_DIR = "results"


@dataclass
class ImageResult:
    """Scores and bookkeeping of one evaluated image.

    Attributes:
        key: the benchmark item key. combination: its averaging unit.
        metrics: ``{metric: value}``.
        seconds: wall-clock seconds the method spent on this image (its batch time / batch size);
            ``None`` for stored outputs (``folder`` method), whose time is unknown.
        stage_seconds: per loop stage (``encode``, ``assess``, ...), seconds for this image.
        rounds: restore→assess rounds taken (0 without a loop).
        labels: decoded assessment text of each round.
        output: saved output path relative to the run directory (``""`` when not saved).
        output_size: ``[h, w]`` of the method's output before the ×4 rule.
        upscaled: the ×4 rule was applied before scoring.
    """

    key: str
    combination: str
    metrics: dict[str, float]
    seconds: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    labels: list[str] = field(default_factory=list)
    output: str = ""
    output_size: list[int] = field(default_factory=list)
    upscaled: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=False)

    @staticmethod
    def from_dict(record: Mapping) -> ImageResult:
        return ImageResult(**{k: record[k] for k in ImageResult.__dataclass_fields__ if k in record})

    def updated(self, newer: ImageResult) -> ImageResult:
        """``newer``'s fields, with the metrics of both (``newer`` wins on conflicts)."""
        merged = ImageResult.from_dict(asdict(newer))
        merged.metrics = {**self.metrics, **newer.metrics}
        return merged


def part_path(run_dir: Path, index: int, num_shards: int) -> Path:
    """The JSONL file shard ``index`` of ``num_shards`` appends to."""
    return Path(run_dir) / RESULTS_DIR / f"part-{index:03d}-of-{num_shards:03d}.jsonl"


def drop_partial_line(path: Path) -> None:
    """Cut an unterminated last line (a record cut short by a killed run) off ``path``, if any."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def append_result(path: Path, result: ImageResult) -> None:
    """Append one record to ``path`` and flush it to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(result.to_json() + "\n")
        handle.flush()


def read_results(run_dir: Path) -> dict[str, ImageResult]:
    """All records under ``<run_dir>/results/``, merged by key (see the module docstring).

    An unterminated last line (a run killed while writing) is ignored; a malformed line
    elsewhere raises ``ValueError`` naming the file and line.
    """
    results: dict[str, ImageResult] = {}
    for path in sorted((Path(run_dir) / RESULTS_DIR).glob("part-*.jsonl")):
        text = path.read_text()
        lines = text.splitlines()
        if text and not text.endswith("\n"):
            lines = lines[:-1]
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = ImageResult.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a result record ({error})") from error
            old = results.get(record.key)
            results[record.key] = old.updated(record) if old else record
    return results


@dataclass
class ScoreRow:
    """Means over a set of images (one combination, or the whole benchmark).

    Attributes:
        name: combination name, or the benchmark name for the overall row.
        images: number of images with results.
        metrics: ``{metric: mean}`` (the overall row: unweighted mean of the combination means);
            NaN when no image has the metric.
        seconds: mean method seconds per image (``None`` when unknown).
        rounds: mean rounds per image (``None`` without images).
        stage_seconds: mean seconds per image for each stage reported.
    """

    name: str
    images: int
    metrics: dict[str, float]
    seconds: float | None
    rounds: float | None
    stage_seconds: dict[str, float]


@dataclass
class Summary:
    """A benchmark's scores: one row per combination plus the overall (group) row.

    Attributes:
        benchmark: benchmark name. method: method name. metrics: metric names, column order.
        rows: per-combination rows in the benchmark's order. overall: the group row.
        expected_images: items in the benchmark (``overall.images`` < this means partial).
    """

    benchmark: str
    method: str
    metrics: list[str]
    rows: list[ScoreRow]
    overall: ScoreRow
    expected_images: int

    @property
    def complete(self) -> bool:
        return self.overall.images == self.expected_images


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _row(name: str, results: Sequence[ImageResult], metrics: Sequence[str]) -> ScoreRow:
    timed = [r.seconds for r in results if r.seconds is not None]
    stages = list(dict.fromkeys(s for r in results for s in r.stage_seconds))
    return ScoreRow(
        name=name,
        images=len(results),
        metrics={m: _mean([r.metrics[m] for r in results if m in r.metrics]) for m in metrics},
        seconds=_mean(timed) if timed else None,
        rounds=_mean([r.rounds for r in results]) if results else None,
        stage_seconds={s: _mean([r.stage_seconds[s] for r in results if s in r.stage_seconds]) for s in stages},
    )


def summarize(
    benchmark: Benchmark, results: Mapping[str, ImageResult], metrics: Sequence[str], method: str
) -> Summary:
    """Aggregate the results of ``benchmark``'s items (others in ``results`` are ignored)."""
    present = [results[item.key] for item in benchmark.items if item.key in results]
    by_combination: dict[str, list[ImageResult]] = {c: [] for c in benchmark.combinations}
    for item in benchmark.items:
        if item.key in results:
            by_combination[item.combination].append(results[item.key])
    rows = [_row(c, by_combination[c], metrics) for c in benchmark.combinations]
    overall = _row(benchmark.name, present, metrics)
    scored = [row for row in rows if row.images]
    overall.metrics = {m: _mean([row.metrics[m] for row in scored if not math.isnan(row.metrics[m])]) for m in metrics}
    return Summary(benchmark.name, method, list(metrics), rows, overall, len(benchmark.items))


def ordered(benchmark: Benchmark, results: Mapping[str, ImageResult]) -> Iterable[ImageResult]:
    """``results`` of the benchmark's items, in benchmark order."""
    return (results[item.key] for item in benchmark.items if item.key in results)
