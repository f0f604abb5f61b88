"""Reconstruction report of an autoencoder on the committed sample benchmark."""

from __future__ import annotations

import pathlib

import pytest
import torch
import torch.nn.functional as F

from rar.data.benchmark_sets import BenchmarkSet
from rar.eval.metrics import MetricSuite
from rar.eval.reconstruction import reconstruction_quality
from rar.uir.autoencoders import SpaceToDepthAutoencoder

BENCH = pathlib.Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "samples"


class BlurryAutoencoder(SpaceToDepthAutoencoder):
    """Space-to-depth whose decode keeps only each 4x4 block's mean: lossy on purpose."""

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        img = super()._decode(z)
        return F.interpolate(F.avg_pool2d(img, self.stride), scale_factor=self.stride, mode="nearest")


def test_lossless_and_lossy_autoencoders_are_told_apart():
    bench = BenchmarkSet.load(BENCH, groups=["B"])
    suite = MetricSuite(["psnr", "ssim"])
    lossless = reconstruction_quality(SpaceToDepthAutoencoder(4), bench, suite)
    lossy = reconstruction_quality(BlurryAutoencoder(4), bench, suite)
    assert lossless.counts == {"clean": 3, "B": 12, "B floor": 12, "B input": 12}
    assert list(lossless.rows["B"]) == ["psnr", "ssim"]
    assert lossless.rows["B floor"] == pytest.approx(lossless.rows["B input"])  # lossless: rejecting = the input
    assert lossy.rows["B floor"]["ssim"] < lossy.rows["B input"]["ssim"]
    assert lossless.rows["clean"]["psnr"] >= 79 and lossless.rows["B"]["ssim"] > 0.999
    assert lossy.rows["clean"]["psnr"] < 35 and lossy.rows["clean"]["ssim"] < 0.95
    assert "| clean | 3 |" in lossy.table()
