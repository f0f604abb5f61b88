"""Reports written into the run directory from the merged results.

- ``images.jsonl``: one record per image (metrics, seconds, rounds, decoded labels), benchmark order;
- ``per_combination.csv``: means per combination;
- ``summary.md`` / ``summary.csv``: the paper's table layout — one row per method with
  PSNR / SSIM / LPIPS / MANIQA / CLIP-IQA / MUSIQ (+ NIQE / NIMA) group scores, seconds per image
  and mean rounds; then the per-combination table and the time per loop stage (paper Table 7);
- ``montage.png``: a few examples, one row each: LQ | output | HQ.

Everything here reads the results and saved images only, so reports can be rewritten at any time
(e.g. after merging shards) and are identical whichever processes produced the results.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rar.core.outputs import STAGES
from rar.eval.benchmark import Benchmark
from rar.eval.metrics import METRICS
from rar.eval.results import ImageResult, ScoreRow, Summary, ordered
from rar.utils.image_io import load_image, save_image


def _fmt(value: float | None, decimals: int) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{decimals}f}"


def _header(metric: str) -> str:
    setting = METRICS[metric]
    return f"{setting.label}{'↓' if setting.lower_better else '↑'}"


def _stages(rows: Sequence[ScoreRow]) -> list[str]:
    seen = list(dict.fromkeys(s for row in rows for s in row.stage_seconds))
    return [s for s in STAGES if s in seen] + [s for s in seen if s not in STAGES]


def _csv_row(row: ScoreRow, metrics: Sequence[str], stages: Sequence[str]) -> list:
    return (
        [row.images]
        + [row.metrics[m] for m in metrics]
        + [row.seconds if row.seconds is not None else "", row.rounds if row.rounds is not None else ""]
        + [row.stage_seconds.get(s, "") for s in stages]
    )


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def summary_markdown(summary: Summary) -> str:
    """The summary in the paper's table layout (markdown)."""
    metrics, overall = summary.metrics, summary.overall
    stages = _stages([overall])
    cols = [_header(m) for m in metrics] + ["s/image", "rounds"]
    lines = [f"# {summary.benchmark} — {summary.method}", ""]
    status = (
        f"{overall.images} images, {len(summary.rows)} combinations; group score = unweighted mean over combinations."
    )
    if not summary.complete:
        status += f" **PARTIAL: {overall.images} of {summary.expected_images} images scored.**"
    lines += [status, "", "| Method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    values = [_fmt(overall.metrics[m], METRICS[m].decimals) for m in metrics]
    values += [_fmt(overall.seconds, 3), _fmt(overall.rounds, 2)]
    lines += [f"| {summary.method} | " + " | ".join(values) + " |", "", "## Per combination", ""]
    cols = ["images"] + [_header(m) for m in metrics] + ["s/image", "rounds"]
    lines += ["| Combination | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row in summary.rows:
        values = [str(row.images)] + [_fmt(row.metrics[m], METRICS[m].decimals) for m in metrics]
        values += [_fmt(row.seconds, 3), _fmt(row.rounds, 2)]
        lines.append(f"| {row.name} | " + " | ".join(values) + " |")
    lines += ["", "## Time per image (seconds)", "", "| Stage | s/image |", "|---|---|"]
    lines += [f"| {stage} | {_fmt(overall.stage_seconds[stage], 3)} |" for stage in stages]
    lines += [f"| total | {_fmt(overall.seconds, 3)} |", ""]
    return "\n".join(lines)


def write_reports(summary: Summary, benchmark: Benchmark, results: Mapping[str, ImageResult], run_dir: Path) -> None:
    """Write ``images.jsonl``, ``per_combination.csv``, ``summary.csv`` and ``summary.md``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "images.jsonl").write_text("".join(r.to_json() + "\n" for r in ordered(benchmark, results)))
    metrics = summary.metrics
    stages = _stages(summary.rows + [summary.overall])
    tail = ["seconds_per_image", "mean_rounds"] + [f"seconds_{s}" for s in stages]
    _write_csv(
        run_dir / "per_combination.csv",
        ["combination", "images", *metrics, *tail],
        [[row.name, *_csv_row(row, metrics, stages)] for row in summary.rows],
    )
    _write_csv(
        run_dir / "summary.csv",
        ["benchmark", "method", "expected_images", "combinations", "images", *metrics, *tail],
        [[summary.benchmark, summary.method, summary.expected_images, len(summary.rows),
          *_csv_row(summary.overall, metrics, stages)]],
    )
    (run_dir / "summary.md").write_text(summary_markdown(summary))


def resize_panel(img: torch.Tensor, height: int) -> torch.Tensor:
    width = max(1, round(img.shape[-1] * height / img.shape[-2]))
    resized = F.interpolate(img[None], size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return resized[0].clamp(0, 1)


def caption_strip(text: str, width: int, height: int = 20) -> torch.Tensor:
    strip = np.full((height, width, 3), 255, dtype=np.uint8)
    cv2.putText(strip, text, (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return torch.from_numpy(strip).permute(2, 0, 1).float() / 255


def pick_examples(benchmark: Benchmark, available: set[str], count: int) -> list:
    """Up to ``count`` items whose keys are in ``available``: one per combination first, then
    the next ones in benchmark order; returned in benchmark order."""
    candidates = [item for item in benchmark.items if item.key in available]
    chosen, used = [], set()
    for item in candidates:
        if item.combination not in used and len(chosen) < count:
            chosen.append(item)
            used.add(item.combination)
    chosen += [i for i in candidates if i not in chosen][: max(0, count - len(chosen))]
    order = {item.key: n for n, item in enumerate(benchmark.items)}
    return sorted(chosen, key=lambda item: order[item.key])


def write_montage(
    benchmark: Benchmark, results: Mapping[str, ImageResult], run_dir: Path, count: int = 4, height: int = 160
) -> Path | None:
    """Save ``montage.png``: up to ``count`` examples (one per combination first, in benchmark order),
    each row ``LQ | output | HQ`` at ``height`` pixels with a caption. Returns ``None`` when no
    scored example has a saved output."""
    run_dir = Path(run_dir)
    saved = {k for k, r in results.items() if r.output and (run_dir / r.output).is_file()}
    chosen = [(item, results[item.key]) for item in pick_examples(benchmark, saved, count)]
    if not chosen:
        return None
    rows = []
    for item, result in chosen:
        panels = [resize_panel(load_image(p), height) for p in (item.lq, run_dir / result.output, item.hq)]
        row = torch.cat([torch.cat([p, torch.ones(3, height, 4)], dim=-1) for p in panels], dim=-1)
        scores = " ".join(f"{METRICS[m].label} {_fmt(v, METRICS[m].decimals)}" for m, v in result.metrics.items())
        text = f"{item.key}  [LQ | output | HQ]  {scores}"
        rows.append(torch.cat([caption_strip(text, row.shape[-1]), row], dim=-2))
    width = max(r.shape[-1] for r in rows)
    rows = [F.pad(r, (0, width - r.shape[-1]), value=1.0) for r in rows]
    return save_image(torch.cat(rows, dim=-2), run_dir / "montage.png", overwrite=True)
