"""Stage ``iqa_pretrain`` (tiny experiment only): train the pixel-path DepictQA from scratch.

Stands in for DepictQA's released weights, which real runs load instead. One step: next-token
CE on the answers of a batch of DepictQA-format records (identification and comparison),
images read through CLIP → abstractor → projector. Which parameters train (abstractor,
projector, the whole LLM; optionally the tiny CLIP) is the phases' business.
"""

from __future__ import annotations

import pathlib

import torch

from rar.lqa.datasets import LQABatch
from rar.lqa.model import DepictQA
from rar.training.stage import Stage, StepOutput
from rar.training.stages.lqa_common import first_samples, save_tokenizer, validate_lqa


class IQAPretrainStage(Stage):
    """Children: ``lqa``.

    Args:
        lqa: the DepictQA model (needs its pixel path).
        tokenizer_dir: where to record the tokenizer with the run (e.g. ``${run_dir}/tokenizer``).
        val_dataset: single-phrase records scored by :meth:`validate` (first ``val_samples``).
        val_samples: how many.
    """

    def __init__(self, lqa: DepictQA, tokenizer_dir: str | None = None,
                 val_dataset: torch.utils.data.Dataset | None = None, val_samples: int = 64) -> None:
        super().__init__()
        if lqa.vision_encoder is None:
            raise ValueError("iqa_pretrain trains the pixel path: build the lqa with vision_pretrained")
        self.lqa = lqa
        self.val_dataset, self.val_samples = val_dataset, val_samples
        save_tokenizer(lqa, tokenizer_dir)
        self.train()

    def forward(self, batch: LQABatch) -> StepOutput:
        out = self.lqa(batch.layouts, batch.images, space="pixel")
        return StepOutput(out.loss, {"token_acc": float(out.accuracy)})

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        return validate_lqa(self.lqa, first_samples(self.val_dataset, self.val_samples), "pixel", out_dir)
