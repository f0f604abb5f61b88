"""How close to lossless an autoencoder is on a benchmark set: PSNR/SSIM of ``decode(encode(x))``.

RAR's floor is the autoencoder: an image whose every round is rejected comes back as its
reconstruction, so the reconstruction of degraded inputs (and of clean photos, which later
rounds approach) must be near-lossless. :func:`reconstruction_quality` scores both, full size,
with the harness's metric settings (:class:`rar.eval.metrics.MetricSuite`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rar.data.benchmark_sets import BenchmarkSet
from rar.eval.metrics import MetricSuite
from rar.uir.autoencoders import LatentAutoencoder
from rar.utils.image_io import load_image


@dataclass
class ReconstructionReport:
    """Mean scores of reconstructions against the images that were encoded.

    Attributes:
        rows: ``{row: {metric: mean}}``; rows are ``clean`` (each distinct HQ image once) and
            ``<group>`` (that group's LQ images), e.g. ``{"clean": {"psnr": 36.1, "ssim": 0.97}}``,
            each scored against the image that was encoded; then ``<group> floor`` and
            ``<group> input``: the reconstructed LQ and the LQ itself scored against the clean
            image (what RAR returns when it rejects every round, and what it must beat).
        counts: images per row.
        seconds: wall time of the encode/decode passes.
    """

    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self) -> str:
        """A Markdown table: one line per row, one column per metric."""
        metrics = list(next(iter(self.rows.values()))) if self.rows else []
        lines = ["| images | n | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for row, values in self.rows.items():
            lines.append(f"| {row} | {self.counts[row]} | " + " | ".join(f"{values[m]:.4g}" for m in metrics) + " |")
        return "\n".join(lines)


@torch.no_grad()
def reconstruct(autoencoder: LatentAutoencoder, image: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """``decode(encode(image))`` of one image ``[3, H, W]`` in ``[0, 1]`` on ``device``; same size, on the CPU."""
    return autoencoder.decode(autoencoder.encode(image[None].to(device)), size=image.shape[-2:])[0].cpu()


def reconstruction_quality(autoencoder: LatentAutoencoder, bench: BenchmarkSet, suite: MetricSuite) -> ReconstructionReport:
    """Score reconstructions of ``bench``'s clean images and of each group's degraded images
    (the autoencoder runs on ``suite.device``)."""
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
    for row, entries in jobs.items():
        totals: dict[str, float] = {}
        for path, reference, through_autoencoder in entries:
            output = load_image(path)
            if through_autoencoder:
                start = time.perf_counter()
                output = reconstruct(autoencoder, output, suite.device)
                elapsed += time.perf_counter() - start
            for name, value in suite.score(output, load_image(reference), str(path)).items():
                totals[name] = totals.get(name, 0.0) + value
        report.rows[row] = {name: total / len(entries) for name, total in totals.items()}
        report.counts[row] = len(entries)
    report.seconds = elapsed
    return report
