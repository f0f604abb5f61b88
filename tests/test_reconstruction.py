"""Reconstruction report of an autoencoder on the committed sample benchmark."""

from __future__ import annotations

import dataclasses
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
    # per combination, the reconstruction's cost against the input: none when lossless, some when not
    assert set(lossy.combinations) == {f"B:{c}" for c in bench.combinations("B")}
    assert all(abs(v["ssim"]) < 1e-6 for v in lossless.combinations.values())
    assert sum(v["ssim"] for v in lossy.combinations.values()) < 0
    worst = min(lossy.combinations, key=lambda k: lossy.combinations[k]["ssim"])
    assert lossy.combination_table().splitlines()[2].startswith(f"| {worst} |")


def test_low_resolution_inputs_are_encoded_upscaled_as_rar_encodes_them():
    bench = BenchmarkSet.load(BENCH, groups=["B"])
    bench = dataclasses.replace(bench, items=tuple(i for i in bench.items if "low resolution" in i.combination)[:1])
    suite = MetricSuite(["psnr"])
    sizes = []

    class Recording(SpaceToDepthAutoencoder):
        def _encode(self, x: torch.Tensor) -> torch.Tensor:
            sizes.append(tuple(x.shape[-2:]))
            return super()._encode(x)

    reconstruction_quality(Recording(4), bench, suite)
    # encoded: the clean photo, the input as given (row "B"), the input for its floor: x4-upscaled
    assert [width for _, width in sizes] == [256, 64, 256]
    sizes.clear()
    reconstruction_quality(Recording(4), bench, suite, upscale_inputs=False)
    # not upscaled, the floor is the input's own reconstruction: encoded once, at its size
    assert [width for _, width in sizes] == [256, 64]
