"""Merge a Hydra multirun sweep of evaluation runs into one table.

A sweep (``python scripts/eval.py -m benchmark=a,b method=x,y``) writes one job folder per
combination of overrides, ``<multirun dir>/<job number>/``, each holding Hydra's
``.hydra/overrides.yaml`` and the harness's ``summary.csv``. :func:`collect_sweep` reads them
into one row per job (its overrides plus its summary); :func:`write_collected` writes
``collected.md`` and ``collected.csv`` into the sweep folder. Jobs without a summary (failed or
still running) are listed with status ``no summary.csv``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from rar.eval.metrics import METRICS

SUMMARY_COLUMNS = ("benchmark", "method", "expected_images", "combinations", "images")


@dataclass
class JobRow:
    """One job of a sweep.

    Attributes:
        job: job folder name (Hydra's job number). overrides: the job's command-line overrides.
        summary: the job's ``summary.csv`` row (column -> text), empty when missing.
        status: ``"ok"`` or why there is no summary.
    """

    job: str
    overrides: list[str]
    summary: dict[str, str]
    status: str


def collect_sweep(multirun_dir: str | Path) -> list[JobRow]:
    """One :class:`JobRow` per job folder (a folder with ``.hydra/overrides.yaml``), by job number."""
    root = Path(multirun_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"multirun folder not found: {root}")
    jobs = [p for p in root.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    if not jobs:
        raise FileNotFoundError(f"no Hydra jobs under {root} (expected <job>/.hydra/overrides.yaml)")
    rows = []
    for job in sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)):
        overrides = [str(o) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []]
        summary_file = job / "summary.csv"
        if summary_file.is_file():
            with open(summary_file, newline="") as handle:
                records = list(csv.DictReader(handle))
            status = "ok" if records else "empty summary.csv"
            rows.append(JobRow(job.name, overrides, records[0] if records else {}, status))
        else:
            rows.append(JobRow(job.name, overrides, {}, "no summary.csv"))
    return rows


def _columns(rows: Sequence[JobRow]) -> list[str]:
    seen = list(dict.fromkeys(c for row in rows for c in row.summary))
    return [c for c in SUMMARY_COLUMNS if c in seen] + [c for c in seen if c not in SUMMARY_COLUMNS]


def _cell(column: str, text: str) -> str:
    if not text:
        return ""
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isnan(value):
        return "n/a"
    if column in METRICS:
        return f"{value:.{METRICS[column].decimals}f}"
    if column.startswith("seconds") or column == "mean_rounds":
        return f"{value:.3f}"
    return text


def _header(column: str) -> str:
    if column in METRICS:
        setting = METRICS[column]
        return f"{setting.label}{'↓' if setting.lower_better else '↑'}"
    return {"seconds_per_image": "s/image", "mean_rounds": "rounds"}.get(column, column)


def collected_markdown(rows: Sequence[JobRow]) -> str:
    """The sweep as one markdown table (one row per job)."""
    columns = _columns(rows)
    header = ["job", "overrides", *(_header(c) for c in columns), "status"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in rows:
        overrides = " ".join(row.overrides).replace("|", "\\|")
        cells = [row.job, overrides, *(_cell(c, row.summary.get(c, "")) for c in columns), row.status]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_collected(rows: Sequence[JobRow], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``collected.md`` and ``collected.csv`` (full precision) into ``out_dir``."""
    out_dir = Path(out_dir)
    columns = _columns(rows)
    md_path, csv_path = out_dir / "collected.md", out_dir / "collected.csv"
    md_path.write_text(collected_markdown(rows))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", "overrides", *columns, "status"])
        for row in rows:
            writer.writerow([row.job, " ".join(row.overrides), *(row.summary.get(c, "") for c in columns), row.status])
    return md_path, csv_path
