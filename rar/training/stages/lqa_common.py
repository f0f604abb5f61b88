"""Pieces shared by the stages that train the LQA (``iqa_pretrain``, ``lqa_align``, ``lqa_finetune``,
``cond_align``)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import torch
from accelerate import PartialState

from rar.lqa.datasets import LQASample
from rar.lqa.evaluation import evaluate_lqa
from rar.lqa.model import DepictQA, ImageSpace


def save_tokenizer(lqa: DepictQA, folder: str | pathlib.Path | None) -> None:
    """Record the LQA's tokenizer with the run (main process only); ``None`` skips."""
    if folder is None or lqa.tokenizer is None or not PartialState().is_main_process:
        return
    lqa.tokenizer.save_pretrained(str(folder))


def first_samples(dataset: torch.utils.data.Dataset | None, n: int) -> list[LQASample]:
    """The first ``n`` samples of a validation dataset (fixed, so runs are comparable)."""
    if dataset is None:
        return []
    return [dataset[i] for i in range(min(n, len(dataset)))]


def validate_lqa(
    lqa: DepictQA,
    samples: list[LQASample],
    space: ImageSpace,
    out_dir: pathlib.Path,
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Identification / comparison accuracy on ``samples``; also written to ``out_dir/lqa.json``."""
    if not samples:
        return {}
    was_training = lqa.training
    lqa.eval()
    try:
        acc = evaluate_lqa(lqa, samples, space, encode=encode)
    finally:
        lqa.train(was_training)
    values = acc.as_dict()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lqa.json").write_text(json.dumps(values | {"n_identify": acc.n_identify, "n_compare": acc.n_compare}))
    return values
