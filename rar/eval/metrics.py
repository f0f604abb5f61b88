"""Image-quality metrics with AgenticIR's settings, through pyiqa.

AgenticIR scores every output with ``pyiqa.create_metric(name)`` defaults (they pinned pyiqa
0.1.10); :data:`METRICS` spells those settings out so they do not drift with pyiqa's defaults:
PSNR on RGB, SSIM on the Y channel (pyiqa's Y of YIQ, 8-bit rounded, no downsampling),
LPIPS AlexNet v0.1, MANIQA (KonIQ), CLIP-IQA (RN50), MUSIQ (KonIQ); RAR adds NIQE and NIMA.

Scoring rules (:meth:`MetricSuite.score`):

- images are RGB ``[3, H, W]`` in ``[0, 1]``; an output is first quantised to 8 bits, as the
  PNG AgenticIR scores would be (``quantize=True``), so that re-scoring saved outputs with the
  ``folder`` method gives the same numbers;
- an output exactly 1/4 of the reference size is upscaled ×4 with MATLAB bicubic and clamped to
  ``[0, 1]`` (AgenticIR's rule for low-resolution inputs); any other size mismatch is an error;
- each image is scored alone with the RNGs (torch, numpy, random) seeded to ``seed``, so
  metrics with random crops (MANIQA in pyiqa 0.1.10) give the same value whatever the batch,
  order or sharding.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rar.degradations.resize import imresize
from rar.eval.weights import WeightDirs, check_weights


@dataclass(frozen=True)
class MetricSetting:
    """How one metric is built and reported.

    Attributes:
        pyiqa_name: name passed to ``pyiqa.create_metric``.
        options: keyword options passed with it (AgenticIR's settings, explicit).
        full_reference: needs the clean image.
        lower_better: smaller is better (LPIPS, NIQE).
        label: column header in tables.
        decimals: digits shown in tables.
    """

    pyiqa_name: str
    full_reference: bool
    label: str
    decimals: int
    lower_better: bool = False
    options: dict[str, Any] = field(default_factory=dict)


METRICS: dict[str, MetricSetting] = {
    "psnr": MetricSetting("psnr", True, "PSNR", 2, options={"test_y_channel": False}),
    "ssim": MetricSetting(
        "ssim", True, "SSIM", 4, options={"test_y_channel": True, "color_space": "yiq", "downsample": False}
    ),
    "lpips": MetricSetting("lpips", True, "LPIPS", 4, lower_better=True, options={"net": "alex", "version": "0.1"}),
    "maniqa": MetricSetting("maniqa", False, "MANIQA", 4, options={"train_dataset": "koniq"}),
    "clipiqa": MetricSetting("clipiqa", False, "CLIP-IQA", 4, options={"model_type": "clipiqa", "backbone": "RN50"}),
    "musiq": MetricSetting("musiq", False, "MUSIQ", 2, options={"pretrained": "koniq10k"}),
    "niqe": MetricSetting("niqe", False, "NIQE", 4, lower_better=True),
    "nima": MetricSetting("nima", False, "NIMA", 4),
}
"""The metrics the harness knows, in the paper's column order (AgenticIR's six, then NIQE, NIMA)."""


class SizeMismatchError(ValueError):
    """An output's size is neither the reference size nor exactly 1/4 of it."""


def quantize_8bit(img: torch.Tensor) -> torch.Tensor:
    """``round(clamp(img, 0, 1) * 255) / 255``: the values an 8-bit PNG of ``img`` holds."""
    return (img.clamp(0, 1) * 255).round() / 255


def match_reference_size(output: torch.Tensor, reference_size: tuple[int, int], name: str) -> torch.Tensor:
    """Apply the ×4 rule: bring ``output [3, h, w]`` to ``reference_size (H, W)``.

    Returns ``output`` unchanged when ``(h, w) == (H, W)``; when ``(4h, 4w) == (H, W)`` the MATLAB
    bicubic ×4 upscale of it, clamped to ``[0, 1]``. Raises :class:`SizeMismatchError` naming
    ``name`` and both sizes otherwise.
    """
    h, w = output.shape[-2:]
    big_h, big_w = reference_size
    if (h, w) == (big_h, big_w):
        return output
    if (4 * h, 4 * w) == (big_h, big_w):
        return imresize(output[None].float(), scale=4)[0].clamp(0, 1)
    raise SizeMismatchError(
        f"{name}: output is {h}x{w} but the reference is {big_h}x{big_w}; expected the same size "
        f"or exactly 1/4 of it ({big_h / 4:g}x{big_w / 4:g}, upscaled x4 before scoring)"
    )


def upscale_low_resolution(image: torch.Tensor, reference_size: tuple[int, int], name: str) -> torch.Tensor:
    """``image [3, h, w]`` upscaled x4 (as :func:`match_reference_size`) when it is exactly 1/4 of
    ``reference_size``; any other size unchanged. How low-resolution inputs reach a method."""
    if (4 * image.shape[-2], 4 * image.shape[-1]) == tuple(reference_size):
        return match_reference_size(image, reference_size, name)
    return image


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch (CPU and ``device``), numpy and ``random`` for the block; restore them afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


class MetricSuite:
    """The requested pyiqa metrics, built once, with their weights checked first.

    Args:
        names: metric names from :data:`METRICS` (e.g. ``["psnr", "ssim"]``).
        device: where the metric networks run.
        seed: RNG seed set before scoring each image.
        quantize: score outputs as 8-bit images (see the module docstring).
        allow_download: let pyiqa download missing weights (only when ``HF_HUB_OFFLINE`` is not
            set); by default missing weights raise :class:`~rar.eval.weights.MissingWeightsError`
            before any metric is built.
    """

    def __init__(
        self,
        names: Sequence[str],
        device: str | torch.device = "cpu",
        seed: int = 0,
        quantize: bool = True,
        allow_download: bool = False,
    ) -> None:
        unknown = [n for n in names if n not in METRICS]
        if unknown or not names:
            raise ValueError(f"unknown or no metrics {list(unknown) or list(names)}; known: {', '.join(METRICS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"metrics listed twice: {list(names)}")
        self.names = list(names)
        self.device = torch.device(device)
        self.seed = seed
        self.quantize = quantize
        dirs = WeightDirs.current()
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false", "no")
        if not allow_download or offline:
            check_weights(self.names, dirs)
        import pyiqa
        import pyiqa.utils.download_util as pyiqa_download

        # pyiqa freezes its cache folder when imported; point it at the folder just checked.
        pyiqa_download.DEFAULT_CACHE_DIR = str(dirs.pyiqa)
        self._metrics = {
            name: pyiqa.create_metric(METRICS[name].pyiqa_name, device=self.device, **METRICS[name].options)
            for name in self.names
        }

    @property
    def settings(self) -> dict[str, MetricSetting]:
        return {name: METRICS[name] for name in self.names}

    def prepare(self, output: torch.Tensor, reference_size: tuple[int, int], name: str) -> torch.Tensor:
        """The image that is scored: 8-bit quantised (if enabled), then the ×4 rule."""
        output = output.detach().float()
        if self.quantize:
            output = quantize_8bit(output)
        return match_reference_size(output, reference_size, name)

    @torch.no_grad()
    def score(self, output: torch.Tensor, reference: torch.Tensor, name: str) -> dict[str, float]:
        """Score one output ``[3, h, w]`` against ``reference [3, H, W]`` (both in ``[0, 1]``).

        Returns ``{metric: value}`` in :attr:`names` order. Raises :class:`SizeMismatchError`.
        """
        if output.ndim != 3 or reference.ndim != 3:
            raise ValueError(
                f"{name}: score expects [3,H,W] images, got {tuple(output.shape)} and {tuple(reference.shape)}"
            )
        image = self.prepare(output, tuple(reference.shape[-2:]), name)[None].to(self.device)
        reference = reference[None].float().to(self.device)
        values = {}
        for metric_name, metric in self._metrics.items():
            with seeded(self.seed, self.device):
                value = metric(image, reference) if METRICS[metric_name].full_reference else metric(image)
            values[metric_name] = float(value.flatten()[0])
        return values
