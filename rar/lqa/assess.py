"""Assess → adapt, written once: the LQA's identification of a latent (or image) becomes the
UIR's condition through the text adapter.

::

    assessment = LQA.assess(x)                       # greedy answer + its last-layer hidden states
    c          = TextAdapter(assessment.hidden)      # no text encoder, the decoded text is only logged

The RAR pipeline (every round), the ``uir`` stage's LQA condition source and the ``joint``
stage's rollout all call :func:`assess_and_adapt`.
"""

from __future__ import annotations

import torch

from rar.conditioning.condition import Condition
from rar.core.modes import train_mode
from rar.lqa.model import Assessment, DepictQA, ImageSpace
from rar.lqa.text_adapter import TextAdapter


def assess_and_adapt(
    lqa: DepictQA, text_adapter: TextAdapter, x: torch.Tensor, space: ImageSpace | None = None,
    question: str | None = None,
) -> tuple[Condition, Assessment]:
    """The UIR condition of ``x`` and the LQA's assessment it came from.

    The LQA answers in eval mode (no LoRA / abstractor dropout: the answer is deterministic, as at
    inference) and its mode is restored afterwards; the text adapter keeps its own mode. Runs under
    the caller's grad mode (the greedy answer itself has no gradient; the hidden states and the
    text adapter do).

    Args:
        lqa: the assessor.
        text_adapter: answer hidden states → :class:`Condition`.
        x: ``[B, C, h, w]`` latents or ``[B, 3, H, W]`` images in ``[0, 1]``, per ``space``.
        space: ``"latent"`` | ``"pixel"``; ``None`` takes ``lqa.image_space``.
        question: the full identification question (tail included); ``None`` asks the LQA's own.
    """
    if question is not None and lqa.tokenizer is None:
        raise RuntimeError("the LQA has no tokenizer; a prompt pool needs one to phrase its questions")
    with train_mode(lqa, False):
        assessment = lqa.assess(x, space=space, question=question)
    return text_adapter(assessment.hidden, assessment.mask), assessment
