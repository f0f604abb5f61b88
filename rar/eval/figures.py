"""Paper figures from run folders: training curves and a side-by-side comparison of methods.

- :func:`plot_training_curves`: every numeric series of ``metrics.jsonl`` (the loss, and what a
  stage logs beside it) against the step, one line per run and phase, one panel per series
  (the loss on a log axis); PNG.
- :func:`comparison_grid`: the same benchmark items restored by several methods (their eval run
  folders), one row per item, ``LQ | method 1 | ... | method n | HQ`` with a header naming the
  columns and a caption giving each method's PSNR (the paper's Fig. 4/6 layout); PNG.

Both read only what the runs wrote, so figures can be redrawn at any time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from rar.eval.benchmark import Benchmark
from rar.eval.report import caption_strip, pick_examples, resize_panel
from rar.eval.results import read_results
from rar.utils.image_io import load_image, save_image

NOT_PLOTTED = frozenset({"phase", "step", "lr", "seconds"})


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``<run_dir>/metrics.jsonl`` (a torn last line is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.jsonl (expected a training run folder)")
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # a run killed while writing
            raise ValueError(f"{path}:{number}: not a JSON record ({error})") from error
    return records


def plot_training_curves(runs: Mapping[str, str | Path], out: str | Path) -> Path:
    """Draw the curves of ``runs`` (``{label: run folder}``) into the PNG ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for label, run_dir in runs.items():
        for record in read_metrics(run_dir):
            for key, value in record.items():
                if key in NOT_PLOTTED or not isinstance(value, int | float):
                    continue
                line = f"{label} / {record.get('phase', '')}".rstrip(" /")
                xs, ys = series.setdefault(key, {}).setdefault(line, ([], []))
                xs.append(record["step"])
                ys.append(value)
    if not series:
        raise ValueError(f"no numeric series in the metrics of {sorted(runs)}")
    names = ["loss", *sorted(k for k in series if k != "loss")] if "loss" in series else sorted(series)
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for line, (xs, ys) in series[name].items():
            ax.plot(xs, ys, label=line, linewidth=1.2)
        if name == "loss" and all(y > 0 for _, ys in series[name].values() for y in ys):
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def comparison_grid(benchmark: Benchmark, runs: Mapping[str, str | Path], out: str | Path, count: int = 4,
                    height: int = 128, keys: Sequence[str] | None = None) -> Path:
    """Write the comparison grid of ``runs`` (``{method label: eval run folder}``) on ``benchmark``.

    ``keys`` picks the items; by default ``count`` items every run restored and saved, one per
    combination first, in benchmark order.
    """
    results = {label: read_results(Path(run_dir)) for label, run_dir in runs.items()}
    saved = {label: {k for k, r in res.items() if r.output and (Path(runs[label]) / r.output).is_file()}
             for label, res in results.items()}
    common = set.intersection(*saved.values()) if saved else set()
    if keys is None:
        chosen = pick_examples(benchmark, common, count)
    else:
        missing = [k for k in keys if k not in common]
        if missing:
            raise ValueError(f"items {missing} are not saved by every run ({sorted(runs)})")
        chosen = [item for item in benchmark.items if item.key in set(keys)]
    if not chosen:
        raise ValueError(f"no benchmark item of {benchmark.name} is saved by every run ({sorted(runs)})")
    table = []  # per item: its images, LQ | methods | HQ, resized to the grid's height
    for item in chosen:
        images = [load_image(item.lq)]
        images += [load_image(Path(runs[label]) / results[label][item.key].output) for label in runs]
        images.append(load_image(item.hq))
        table.append((item, [resize_panel(img, height) for img in images]))
    cell = max(p.shape[-1] for _, panels in table for p in panels) + 4  # every column this wide
    columns = ["LQ", *runs, "HQ"]
    rows = [torch.cat([caption_strip(name, cell) for name in columns], dim=-1)]
    for item, panels in table:
        row = torch.cat([F.pad(p, (0, cell - p.shape[-1]), value=1.0) for p in panels], dim=-1)
        scores = "  ".join(f"{label} {results[label][item.key].metrics.get('psnr', float('nan')):.2f}"
                           for label in runs)
        rows += [caption_strip(f"{item.key}  PSNR: {scores}", row.shape[-1]), row]
    return save_image(torch.cat(rows, dim=-2), Path(out), overwrite=True)
