"""How close to lossless an autoencoder is on a benchmark set: PSNR/SSIM of ``decode(encode(x))``.

RAR's floor is the autoencoder: an image whose every round is rejected comes back as its
reconstruction, so the reconstruction of degraded inputs (and of clean photos, which later
rounds approach) must be near-lossless. :func:`reconstruction_quality` scores both, full size,
with the harness's metric settings (:class:`rar.eval.metrics.MetricSuite`), and per combination
what the reconstruction alone costs against the input: an accepted round is decoded, so where the
encoder drops what the clean image has (rain's fine structure, in the tiny model), no round can come
out far above that floor (docs/experiments.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rar.data.benchmark_sets import BenchmarkSet
from rar.eval.metrics import MetricSuite, upscale_low_resolution
from rar.uir.autoencoders import LatentAutoencoder
from rar.utils.image_io import load_image


@dataclass
class ReconstructionReport:
    """Mean scores of reconstructions against the images that were encoded.

    Attributes:
        rows: ``{row: {metric: mean}}``; rows are ``clean`` (each distinct HQ image once) and
            ``<group>`` (that group's LQ images), e.g. ``{"clean": {"psnr": 36.1, "ssim": 0.97}}``,
            each scored against the image that was encoded; then ``<group> floor`` and
            ``<group> input``: the reconstructed LQ (upscaled first, see ``upscale_inputs``) and
            the LQ itself scored against the clean image (what RAR returns when it rejects every round, and what it must beat).
        combinations: ``{"<group>:<combination>": {metric: mean of floor - input}}``, the
            reconstruction's cost per combination (negative: the autoencoder alone loses that much).
        counts: images per row.
        seconds: wall time of the encode/decode passes.
    """

    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    combinations: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self) -> str:
        """A Markdown table: one line per row, one column per metric."""
        metrics = list(next(iter(self.rows.values()))) if self.rows else []
        lines = ["| images | n | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for row, values in self.rows.items():
            lines.append(f"| {row} | {self.counts[row]} | " + " | ".join(f"{values[m]:.4g}" for m in metrics) + " |")
        return "\n".join(lines)

    def combination_table(self, metric: str = "ssim") -> str:
        """A Markdown table of the reconstruction's cost (floor - input) per combination, worst first."""
        lines = [f"| combination | floor - input ({metric}) |", "|---|---|"]
        for key, values in sorted(self.combinations.items(), key=lambda kv: kv[1][metric]):
            lines.append(f"| {key} | {values[metric]:+.4f} |")
        return "\n".join(lines)


@torch.no_grad()
def reconstruct(autoencoder: LatentAutoencoder, image: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """``decode(encode(image))`` of one image ``[3, H, W]`` in ``[0, 1]`` on ``device``; same size, on the CPU."""
    return autoencoder.decode(autoencoder.encode(image[None].to(device)), size=image.shape[-2:])[0].cpu()


def reconstruction_quality(autoencoder: LatentAutoencoder, bench: BenchmarkSet, suite: MetricSuite,
                           upscale_inputs: bool = True) -> ReconstructionReport:
    """Score reconstructions of ``bench``'s clean images and of each group's degraded images
    (the autoencoder runs on ``suite.device``). With ``upscale_inputs`` (the harness's default for
    RAR, ``configs/method/rar.yaml``) a low-resolution LQ, exactly 1/4 of its reference, is
    upscaled x4 before it is encoded, as RAR encodes it."""
    report = ReconstructionReport()
    # per row: (image to score, reference, whether the image is first passed through the autoencoder)
    jobs: dict[str, list[tuple[Path, Path, bool]]] = {
        "clean": [(hq, hq, True) for hq in sorted({item.hq for item in bench.items})]
    }
    for item in bench.items:
        jobs.setdefault(item.group, []).append((item.lq, item.lq, True))
    for item in bench.items:
        jobs.setdefault(f"{item.group} floor", []).append((item.lq, item.hq, True))
        jobs.setdefault(f"{item.group} input", []).append((item.lq, item.hq, False))
    elapsed = 0.0
    per_item: dict[tuple[str, Path], dict[str, float]] = {}
    for row, entries in jobs.items():
        totals: dict[str, float] = {}
        for path, reference, through_autoencoder in entries:
            output, target = load_image(path), load_image(reference)
            if upscale_inputs:
                output = upscale_low_resolution(output, tuple(target.shape[-2:]), str(path))
            if through_autoencoder:
                start = time.perf_counter()
                output = reconstruct(autoencoder, output, suite.device)
                elapsed += time.perf_counter() - start
            scores = suite.score(output, target, str(path))
            for name, value in scores.items():
                totals[name] = totals.get(name, 0.0) + value
            per_item[row, path] = scores
        report.rows[row] = {name: total / len(entries) for name, total in totals.items()}
        report.counts[row] = len(entries)
    report.seconds = elapsed
    costs: dict[str, list[dict[str, float]]] = {}
    for item in bench.items:
        floor, given = per_item[f"{item.group} floor", item.lq], per_item[f"{item.group} input", item.lq]
        costs.setdefault(f"{item.group}:{item.combination}", []).append({m: floor[m] - given[m] for m in floor})
    report.combinations = {key: {m: sum(c[m] for c in cs) / len(cs) for m in cs[0]} for key, cs in costs.items()}
    return report
