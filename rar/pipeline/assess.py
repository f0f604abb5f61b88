"""Asking the LQA the identification question, optionally in another phrasing.

The prompt-pool option asks :meth:`rar.lqa.model.DepictQA.assess` with a chosen question;
:func:`identify` is that call, so a pooled question takes exactly the path of the default one
(the same prompt layout, decoding budget and shared-prefix KV cache: the question comes after the
image, so every phrasing reuses the same cached prefix).
"""

from __future__ import annotations

import torch

from rar.lqa.model import Assessment, DepictQA, ImageSpace


def identify(lqa: DepictQA, x: torch.Tensor, question: str | None = None, space: ImageSpace | None = None) -> Assessment:
    """``lqa``'s identification of ``x`` (latents or images, per ``space``) asked with ``question``.

    Args:
        lqa: the assessor.
        x: ``[B, C, h, w]`` latents or ``[B, 3, H, W]`` images in ``[0, 1]``.
        question: the full question text (tail included); ``None`` asks the LQA's default question.
        space: ``"latent"`` | ``"pixel"``; ``None`` takes ``lqa.image_space``.
    """
    if question is None:
        return lqa.assess(x, space=space)
    if lqa.tokenizer is None:
        raise RuntimeError("the LQA has no tokenizer; a prompt pool needs one to phrase its questions")
    return lqa.assess(x, space=space, question=question)
