"""Stage ``lqa_align``: teach the image adapter to read latents like DepictQA reads pixels.

One step: for the batch's images ``x``, ``z = E(x)`` (frozen autoencoder) and the target is the
frozen pixel path's abstractor tokens of ``x`` (eval mode: no dropout); the loss is
``MSE(image_adapter(z), target)``. Only ``lqa.image_adapter`` trains (set by the phase).
"""

from __future__ import annotations

import pathlib

import torch
import torch.nn.functional as F

from rar.lqa.datasets import LQABatch
from rar.lqa.model import DepictQA
from rar.training.stage import Stage, StepOutput
from rar.training.stages.lqa_common import first_samples, save_tokenizer, validate_lqa
from rar.uir.autoencoders import LatentAutoencoder


class LQAAlignStage(Stage):
    """Children: ``autoencoder``, ``lqa``.

    Args:
        autoencoder: frozen image → latent encoder of the UIR.
        lqa: DepictQA with both paths (pixel teacher, latent student).
        tokenizer_dir: where to record the tokenizer with the run.
        val_dataset, val_samples: records scored through the latent path by :meth:`validate`.
    """

    def __init__(self, autoencoder: LatentAutoencoder, lqa: DepictQA, tokenizer_dir: str | None = None,
                 val_dataset: torch.utils.data.Dataset | None = None, val_samples: int = 64) -> None:
        super().__init__()
        if lqa.vision_encoder is None or lqa.image_adapter is None:
            raise ValueError("lqa_align needs an lqa with both a pixel path (vision_pretrained) and an image_adapter")
        self.autoencoder = autoencoder
        self.lqa = lqa
        self.val_dataset, self.val_samples = val_dataset, val_samples
        save_tokenizer(lqa, tokenizer_dir)
        self.train()

    def train(self, mode: bool = True) -> LQAAlignStage:
        super().train(mode)
        self.lqa.eval()  # the teacher (CLIP + abstractor) without dropout
        if self.lqa.image_adapter is not None:
            self.lqa.image_adapter.train(mode)
        return self

    def forward(self, batch: LQABatch) -> StepOutput:
        x = batch.images
        with torch.no_grad():
            z = self.autoencoder.encode(x)
            target = self.lqa.pixel_tokens(x)
        pred = self.lqa.latent_tokens(z)
        loss = F.mse_loss(pred.float(), target.float())
        cos = F.cosine_similarity(pred.detach().float(), target.float(), dim=-1).mean()
        return StepOutput(loss, {"cos": float(cos)})

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        return validate_lqa(self.lqa, first_samples(self.val_dataset, self.val_samples), "latent", out_dir,
                            encode=self.autoencoder.encode)
