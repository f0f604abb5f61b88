"""A RAR model folder's LQA as an :class:`rar.core.assessor.Assessor` (for the accuracy table,
:mod:`rar.eval.lqa_accuracy`): it reads latents through the folder's autoencoder, padded to the
pipeline's stride as in restoration, or pixels through its CLIP path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rar.core.assessor import Assessor
from rar.lqa.evaluation import phrase_set
from rar.lqa.model import ImageSpace
from rar.pipeline.geometry import pad_to_multiple
from rar.pipeline.pipeline import RARPipeline


def lqa_phrases(answers: Sequence[str]) -> list[list[str]]:
    """Identification answers → phrase lists (``"Noise, haze"`` → ``["haze", "noise"]``, ``"None"`` → ``["none"]``)."""
    return [sorted(phrase_set(a)) or ["none"] for a in answers]


def lqa_assessor(path: str | Path, space: ImageSpace = "latent", name: str | None = None,
                 device: str | torch.device = "cpu") -> Assessor:
    """The LQA of the model folder ``path`` reading ``space`` (the pixel path needs the folder's CLIP)."""
    pipe = RARPipeline.from_pretrained(path, device=device)
    lqa = pipe.lqa
    if space == "pixel" and lqa.vision_encoder is None:
        raise ValueError(f"{path}: the LQA has no vision encoder, so its pixel path cannot be scored")

    def view(x: torch.Tensor) -> torch.Tensor:
        x = x.to(pipe.device)
        return pipe.autoencoder.encode(pad_to_multiple(x, pipe.stride)) if space == "latent" else x

    return Assessor(
        name or f"LQA ({space})",
        identify=lambda x: lqa_phrases(lqa.assess(view(x), space=space).text),
        compare=lambda a, b: lqa.p_better(view(a), view(b), space=space).p_better,
    )
