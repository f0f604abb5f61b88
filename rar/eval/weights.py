"""Where each IQA metric's weights live, and a start-up check that they are all on disk.

pyiqa downloads weights on first use. On machines without internet that turns into retries or a
hang in the middle of an evaluation, so the harness checks every file a metric needs **before any
image is restored** and fails with the full list of missing files and where to put them.

Locations (read from pyiqa's, torchvision's and timm's own constants, so they follow the
installed versions):

- pyiqa checkpoints: ``$TORCH_HOME/hub/pyiqa/<file>`` (``TORCH_HOME`` defaults to
  ``~/.cache/torch``); source ``https://huggingface.co/chaofengc/IQA-PyTorch-Weights``;
- torchvision backbones (LPIPS' AlexNet): ``$TORCH_HOME/hub/checkpoints/<file>``;
- OpenAI CLIP (CLIP-IQA's RN50): ``$TORCH_HOME/hub/clip/RN50.pt``;
- timm backbones (MANIQA's ViT-B/8, NIMA's Inception-ResNet-v2): the Hugging Face cache
  (``$HF_HUB_CACHE``, default ``$HF_HOME/hub``), repo ``timm/<model>.<tag>``, file
  ``model.safetensors`` (or ``pytorch_model.bin``).

PSNR and SSIM need no weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

HF_WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
"""Files timm accepts for a Hugging Face backbone (either one is enough)."""


class MissingWeightsError(FileNotFoundError):
    """Metric weights are not on disk and may not be downloaded (the message lists them)."""


@dataclass(frozen=True)
class WeightDirs:
    """The folders metric weights are read from.

    Attributes:
        torch_hub: ``torch.hub.get_dir()`` (``$TORCH_HOME/hub``).
        hf_cache: the Hugging Face hub cache timm loads backbones from.
    """

    torch_hub: Path
    hf_cache: Path

    @property
    def pyiqa(self) -> Path:
        """pyiqa's checkpoint folder, ``$TORCH_HOME/hub/pyiqa``."""
        return self.torch_hub / "pyiqa"

    @staticmethod
    def current() -> WeightDirs:
        """The folders as the current environment configures them."""
        from huggingface_hub import constants

        return WeightDirs(torch_hub=Path(torch.hub.get_dir()), hf_cache=Path(constants.HF_HUB_CACHE))


@dataclass(frozen=True)
class WeightFile:
    """One file a metric needs.

    Attributes:
        what: what the file is (``"LPIPS v0.1 AlexNet linear layers"``).
        path: where it must be, for plain files; ``None`` for Hugging Face cache entries.
        hf_repo: Hugging Face repo id of a cached backbone (``timm/...``), else ``None``.
        hf_cache: the cache folder ``hf_repo`` is looked up in.
        source: where to get it (URL, or the ``hf download`` command).
    """

    what: str
    source: str
    path: Path | None = None
    hf_repo: str | None = None
    hf_cache: Path | None = None

    def present(self) -> bool:
        if self.path is not None:
            return self.path.is_file()
        from huggingface_hub import try_to_load_from_cache

        return any(
            isinstance(try_to_load_from_cache(self.hf_repo, name, cache_dir=self.hf_cache), str)
            for name in HF_WEIGHT_FILES
        )

    def describe(self) -> str:
        if self.path is not None:
            return f"{self.path}   ({self.what}; from {self.source})"
        return (
            f"{self.hf_repo} [{' or '.join(HF_WEIGHT_FILES)}] in the Hugging Face cache {self.hf_cache}   "
            f"({self.what}; get it with `{self.source}`)"
        )


def _pyiqa_file(dirs: WeightDirs, url: str, what: str) -> WeightFile:
    return WeightFile(what=what, source=url, path=dirs.pyiqa / os.path.basename(urlparse(url).path))


def _timm_backbone(dirs: WeightDirs, model_name: str, what: str) -> WeightFile:
    from timm.models import get_pretrained_cfg

    repo = get_pretrained_cfg(model_name).hf_hub_id
    return WeightFile(
        what=what, source=f"hf download {repo} {HF_WEIGHT_FILES[0]}", hf_repo=repo, hf_cache=dirs.hf_cache
    )


def _lpips(dirs: WeightDirs) -> list[WeightFile]:
    from pyiqa.archs.lpips_arch import default_model_urls
    from torchvision.models import AlexNet_Weights

    url = AlexNet_Weights.IMAGENET1K_V1.url
    return [
        _pyiqa_file(dirs, default_model_urls["0.1_alex"], "LPIPS v0.1 AlexNet linear layers"),
        WeightFile(
            what="torchvision AlexNet (ImageNet) backbone",
            source=url,
            path=dirs.torch_hub / "checkpoints" / os.path.basename(urlparse(url).path),
        ),
    ]


def _maniqa(dirs: WeightDirs) -> list[WeightFile]:
    from pyiqa.archs.maniqa_arch import default_model_urls

    return [
        _pyiqa_file(dirs, default_model_urls["koniq"], "MANIQA trained on KonIQ-10k"),
        _timm_backbone(dirs, "vit_base_patch8_224", "MANIQA's ViT-B/8 backbone (timm)"),
    ]


def _clipiqa(dirs: WeightDirs) -> list[WeightFile]:
    from pyiqa.archs.clip_model import _MODELS

    url = _MODELS["RN50"]
    return [WeightFile(what="OpenAI CLIP RN50", source=url, path=dirs.torch_hub / "clip" / os.path.basename(url))]


def _musiq(dirs: WeightDirs) -> list[WeightFile]:
    from pyiqa.archs.musiq_arch import default_model_urls

    return [_pyiqa_file(dirs, default_model_urls["koniq10k"], "MUSIQ trained on KonIQ-10k")]


def _niqe(dirs: WeightDirs) -> list[WeightFile]:
    from pyiqa.archs.niqe_arch import default_model_urls

    return [_pyiqa_file(dirs, default_model_urls["url"], "NIQE natural-scene statistics")]


def _nima(dirs: WeightDirs) -> list[WeightFile]:
    from pyiqa.archs.nima_arch import default_model_urls

    return [
        _pyiqa_file(dirs, default_model_urls["inception_resnet_v2-ava"], "NIMA head trained on AVA"),
        _timm_backbone(dirs, "inception_resnet_v2", "NIMA's Inception-ResNet-v2 backbone (timm)"),
    ]


REQUIREMENTS: dict[str, Callable[[WeightDirs], list[WeightFile]]] = {
    "psnr": lambda dirs: [],
    "ssim": lambda dirs: [],
    "lpips": _lpips,
    "maniqa": _maniqa,
    "clipiqa": _clipiqa,
    "musiq": _musiq,
    "niqe": _niqe,
    "nima": _nima,
}
"""Metric name -> the files it needs (the metric settings themselves are in ``rar.eval.metrics``)."""


def required_weights(metric: str, dirs: WeightDirs | None = None) -> list[WeightFile]:
    """The files ``metric`` needs, at the locations ``dirs`` (default: the current environment)."""
    if metric not in REQUIREMENTS:
        raise KeyError(f"unknown metric {metric!r}; known: {', '.join(REQUIREMENTS)}")
    return REQUIREMENTS[metric](dirs or WeightDirs.current())


def missing_weights(metrics: Sequence[str], dirs: WeightDirs | None = None) -> dict[str, list[WeightFile]]:
    """``{metric: [missing files]}`` for the metrics whose weights are not all on disk."""
    dirs = dirs or WeightDirs.current()
    missing = {name: [f for f in required_weights(name, dirs) if not f.present()] for name in metrics}
    return {name: files for name, files in missing.items() if files}


def check_weights(metrics: Sequence[str], dirs: WeightDirs | None = None) -> None:
    """Raise :class:`MissingWeightsError` listing every missing file of ``metrics`` and where it goes."""
    dirs = dirs or WeightDirs.current()
    missing = missing_weights(metrics, dirs)
    if not missing:
        return
    lines = [f"metric weights missing for {', '.join(missing)} (nothing is downloaded at evaluation time):"]
    for name, files in missing.items():
        lines.append(f"  {name}:")
        lines.extend(f"    - {f.describe()}" for f in files)
    lines.append(
        f"Put the files at those paths: torch/pyiqa files under TORCH_HOME/hub (now {dirs.torch_hub}), "
        f"timm backbones in the Hugging Face cache (HF_HUB_CACHE, now {dirs.hf_cache}); "
        "or drop those metrics, e.g. metrics=[psnr,ssim]; "
        "or, with internet, allow pyiqa to fetch them: metrics_download=true without HF_HUB_OFFLINE."
    )
    raise MissingWeightsError("\n".join(lines))
