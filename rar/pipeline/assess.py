"""Asking the LQA the identification question, optionally in another phrasing.

:meth:`rar.lqa.model.DepictQA.assess` always asks the model's own identification question. The
prompt-pool option needs the same call with a chosen question; :func:`identify` builds that prompt
with the LQA's public pieces (``query_layout``, ``prompt_embeds``, ``greedy_decode``) exactly the
way ``assess`` does, and defers to ``assess`` itself when no question is given.
"""

from __future__ import annotations

import torch

from rar.lqa.generation import greedy_decode
from rar.lqa.model import Assessment, DepictQA, ImageSpace
from rar.lqa.prompts import IDENTIFY_TASK, query_layout


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
    tokenizer = lqa.tokenizer
    if tokenizer is None:
        raise RuntimeError("the LQA has no tokenizer; a prompt pool needs one to phrase its questions")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    prompt = lqa.prompt_embeds(query_layout(IDENTIFY_TASK, question), [x], space)
    decoded = greedy_decode(lqa.base_llm, prompt, eos, pad, lqa.max_new_tokens)
    ids = decoded.tokens.masked_fill(~decoded.mask, pad).tolist()
    text = [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return Assessment(decoded.hidden, decoded.mask, text, decoded.tokens)
