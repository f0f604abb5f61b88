"""Stage ``cond_align``: the text adapter learns to speak the conditioner's language.

One step, with the LQA and the conditioner frozen: ``z = E(x)``; the LQA identifies ``z``
(greedy answer + hidden states); the target is the conditioner's embedding of *that answer
text* (SD3.5's text encoders at real scale); the text adapter maps the hidden states to a
:class:`Condition`. With ``target="label"`` the target is the embedding of the image's
ground-truth identification phrase instead (only images whose phrase the data knows are used):
useful when the LQA's answers are unreliable, as in a briefly trained tiny LQA. Loss::

    MSE(prompt_embeds) + MSE(pooled) + cos_weight * [(1 - cos(prompt tokens)) + (1 - cos(pooled))]

with the token cosine averaged over target tokens that are not all-zero. Only
``text_adapter`` trains (set by the phase).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from rar.conditioning.condition import Condition
from rar.lqa.datasets import LQABatch
from rar.lqa.model import DepictQA
from rar.lqa.text_adapter import TextAdapter
from rar.training.stage import Stage, StepOutput
from rar.uir.autoencoders import LatentAutoencoder


def condition_loss(
    pred: Condition, target: Condition, cos_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """The cond_align loss and its terms (floats for logging)."""
    if pred.prompt_embeds.shape != target.prompt_embeds.shape or pred.pooled.shape != target.pooled.shape:
        raise ValueError(
            f"text adapter gives {tuple(pred.prompt_embeds.shape)}/{tuple(pred.pooled.shape)} but the conditioner "
            f"{tuple(target.prompt_embeds.shape)}/{tuple(target.pooled.shape)}: "
            "set the text_adapter's seq_len/joint_dim/pooled_dim"
        )
    p, t = pred.prompt_embeds.float(), target.prompt_embeds.float()
    mse_seq = F.mse_loss(p, t)
    live = t.abs().amax(-1) > 0
    cos_tok = F.cosine_similarity(p, t, dim=-1)
    cos_seq = cos_tok[live].mean() if bool(live.any()) else cos_tok.new_ones(())
    if target.pooled.shape[-1] == 0:  # SD1.5's CLIP-L: no pooled condition, no pooled terms
        mse_pool, cos_pool = p.new_zeros(()), p.new_ones(())
    else:
        mse_pool = F.mse_loss(pred.pooled.float(), target.pooled.float())
        cos_pool = F.cosine_similarity(pred.pooled.float(), target.pooled.float(), dim=-1).mean()
    loss = mse_seq + mse_pool + cos_weight * ((1 - cos_seq) + (1 - cos_pool))
    logs = {name: value.item() for name, value in
            (("mse_seq", mse_seq), ("mse_pooled", mse_pool), ("cos_seq", cos_seq), ("cos_pooled", cos_pool))}
    return loss, logs


class CondAlignStage(Stage):
    """Children: ``autoencoder``, ``lqa``, ``conditioner``, ``text_adapter``.

    Args:
        autoencoder: frozen image → latent encoder.
        lqa: frozen DepictQA (reads latents or, with ``image_space: pixel``, the images).
        conditioner: frozen text conditioner, ``texts -> Condition``.
        text_adapter: the trained module.
        cos_weight: weight of the cosine terms.
        target: ``"answer"`` (the LQA's decoded answer, the paper's setting) or ``"label"``
            (the batch's ground-truth ``image_texts``).
    """

    def __init__(self, autoencoder: LatentAutoencoder, lqa: DepictQA, conditioner: torch.nn.Module,
                 text_adapter: TextAdapter, cos_weight: float = 1.0,
                 target: Literal["answer", "label"] = "answer") -> None:
        super().__init__()
        if target not in ("answer", "label"):
            raise ValueError(f"target must be 'answer' or 'label', got {target!r}")
        self.target = target
        self.autoencoder = autoencoder
        self.lqa = lqa
        self.conditioner = conditioner
        self.text_adapter = text_adapter
        self.cos_weight = cos_weight
        self.train()

    def train(self, mode: bool = True) -> CondAlignStage:
        super().train(mode)
        self.lqa.eval()  # deterministic answers (no LoRA dropout)
        self.conditioner.eval()
        return self

    def forward(self, batch: LQABatch) -> StepOutput:
        x, labels = batch.images, None
        if self.target == "label":
            keep = [i for i, text in enumerate(batch.image_texts) if text is not None]
            if not keep:
                raise ValueError("cond_align(target='label') got a batch without ground-truth image_texts")
            x, labels = x[keep], [batch.image_texts[i] for i in keep]
        with torch.no_grad():
            assessment = self.lqa.assess(self.autoencoder.encode(x) if self.lqa.image_space == "latent" else x)
            target = self.conditioner(labels if labels is not None else assessment.text)
        pred = self.text_adapter(assessment.hidden, assessment.mask)
        loss, logs = condition_loss(pred, target.to(pred.prompt_embeds.device), self.cos_weight)
        return StepOutput(loss, logs)
