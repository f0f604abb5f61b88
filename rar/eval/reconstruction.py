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


def _mean(scores: list[dict[str, float]]) -> dict[str, float]:
    """Per metric, the mean over a list of score dicts."""
    return {name: sum(s[name] for s in scores) / len(scores) for name in scores[0]}


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
    groups = list(dict.fromkeys(item.group for item in bench.items))
    # rows in table order: clean, each group's LQ, then each group's floor and input
    scores: dict[str, list[dict[str, float]]] = {"clean": [], **{g: [] for g in groups}}
    for g in groups:
        scores[f"{g} floor"], scores[f"{g} input"] = [], []
    elapsed = 0.0

    def timed_reconstruct(image: torch.Tensor) -> torch.Tensor:
        nonlocal elapsed
        start = time.perf_counter()
        output = reconstruct(autoencoder, image, suite.device)
        elapsed += time.perf_counter() - start
        return output

    for hq_path in sorted({item.hq for item in bench.items}):
        hq = load_image(hq_path)
        scores["clean"].append(suite.score(timed_reconstruct(hq), hq, str(hq_path)))
    costs: dict[str, list[dict[str, float]]] = {}
    for item in bench.items:
        lq, hq, name = load_image(item.lq), load_image(item.hq), str(item.lq)
        recon = timed_reconstruct(lq)  # the LQ as given, scored against itself
        scores[item.group].append(suite.score(recon, lq, name))
        encoded = upscale_low_resolution(lq, tuple(hq.shape[-2:]), name) if upscale_inputs else lq
        if encoded is not lq:  # only a low-resolution input, upscaled, needs its own pass
            recon = timed_reconstruct(encoded)
        floor, given = suite.score(recon, hq, name), suite.score(encoded, hq, name)
        scores[f"{item.group} floor"].append(floor)
        scores[f"{item.group} input"].append(given)
        costs.setdefault(f"{item.group}:{item.combination}", []).append({m: floor[m] - given[m] for m in floor})
    report.rows = {row: _mean(values) for row, values in scores.items()}
    report.counts = {row: len(values) for row, values in scores.items()}
    report.seconds = elapsed
    report.combinations = {key: _mean(values) for key, values in costs.items()}
    return report
