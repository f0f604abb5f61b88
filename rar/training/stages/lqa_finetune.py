"""Stage ``lqa_finetune``: DepictQA's next-token objective through the latent path.

One step: ``z = E(x)`` for the batch's images (frozen autoencoder), then next-token CE on the
answers of the DepictQA-format records with the images read by the image adapter. The phase
trains the image adapter and the LLM's LoRA (``lqa.image_adapter.*``, ``lqa.llm.*lora_*``).
"""

from __future__ import annotations

import pathlib

import torch

from rar.lqa.datasets import LQABatch
from rar.lqa.model import DepictQA
from rar.training.stage import Stage, StepOutput
from rar.training.stages.lqa_common import first_samples, save_tokenizer, validate_lqa
from rar.uir.autoencoders import LatentAutoencoder


class LQAFinetuneStage(Stage):
    """Children: ``autoencoder``, ``lqa``.

    Args:
        autoencoder: frozen image → latent encoder of the UIR.
        lqa: DepictQA with an image adapter.
        tokenizer_dir: where to record the tokenizer with the run.
        val_dataset, val_samples: records scored through the latent path by :meth:`validate`.
    """

    def __init__(self, autoencoder: LatentAutoencoder, lqa: DepictQA, tokenizer_dir: str | None = None,
                 val_dataset: torch.utils.data.Dataset | None = None, val_samples: int = 64) -> None:
        super().__init__()
        if lqa.image_adapter is None:
            raise ValueError("lqa_finetune trains the latent path: build the lqa with an image_adapter")
        self.autoencoder = autoencoder
        self.lqa = lqa
        self.val_dataset, self.val_samples = val_dataset, val_samples
        save_tokenizer(lqa, tokenizer_dir)
        self.train()

    def forward(self, batch: LQABatch) -> StepOutput:
        with torch.no_grad():
            z = self.autoencoder.encode(batch.images)
        out = self.lqa(batch.layouts, z, space="latent")
        return StepOutput(out.loss, {"token_acc": float(out.accuracy)})

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        return validate_lqa(self.lqa, first_samples(self.val_dataset, self.val_samples), "latent", out_dir,
                            encode=self.autoencoder.encode)
