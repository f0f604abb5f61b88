"""Comparison supervision on the restorer's own rounds (used by the ``lqa_compare`` stage; ours).

At inference the stop rule asks the LQA whether a round's output beats the round's input
(``p_better(new, over=old)``). The LQA learned comparison in ``lqa_finetune`` on synthetic pairs
of degradation levels, never on the UIR's outputs, whose artefacts are of another kind. This module
runs inference rounds from a batch of degraded latents (:func:`own_rounds`, no gradients: assess
once, integrate ``[0, 1]``), labels each pair ``(round output, round input)`` by a full-reference
metric against the clean image, and lays the pairs out for the LQA's comparison prompt
(``"Image A"`` / ``"Image B"``, the order drawn at random so the answer carries no position bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rar.core.modes import train_mode
from rar.lqa.assess import assess_and_adapt
from rar.lqa.model import DepictQA
from rar.lqa.prompts import COMPARE_TASK, PromptLayout, Turn, build_layout
from rar.lqa.text_adapter import TextAdapter
from rar.training.stages.uir import psnr
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel
from rar.uir.sampler import integrate

REFERENCE_METRICS = ("ssim", "psnr")


def reference_scores(images: torch.Tensor, hq: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-image quality ``[B]`` of ``images`` against ``hq`` (both ``[B, 3, H, W]`` in ``[0, 1]``),
    higher is better: ``"ssim"`` (pyiqa's, on Y as in the evaluation) or ``"psnr"`` (RGB, dB)."""
    if metric not in REFERENCE_METRICS:
        raise ValueError(f"metric must be one of {REFERENCE_METRICS}, got {metric!r}")
    if images.shape != hq.shape:
        raise ValueError(f"images {tuple(images.shape)} and references {tuple(hq.shape)} differ in shape")
    if metric == "ssim":
        from pyiqa.archs.ssim_arch import (
            SSIM,  # pyiqa's import is heavy; only this metric needs it
        )

        return SSIM()(images.float(), hq.float()).float()
    return psnr(images, hq)


@dataclass
class ComparisonBatch:
    """Pairs laid out for the LQA's comparison prompt.

    Attributes:
        image_a, image_b: ``[N, C, h, w]`` latents shown as Image A and Image B.
        a_is_better: ``[N]`` bool; the trained answer is ``"Image A"`` where True.
        new_is_better: ``[N]`` bool; the round's output beat its input (for logging).
        layouts: ``N`` training prompts with their answers.
    """

    image_a: torch.Tensor
    image_b: torch.Tensor
    a_is_better: torch.Tensor
    new_is_better: torch.Tensor
    layouts: list[PromptLayout]


def comparison_batch(
    new: torch.Tensor, old: torch.Tensor, new_score: torch.Tensor, old_score: torch.Tensor, question: str,
    generator: torch.Generator | None = None,
) -> ComparisonBatch:
    """Lay out pairs ``(new [N, ...], old [N, ...])`` with scores ``[N]``: each pair's order is
    drawn at random and the answer names the image with the strictly higher score (a tie counts
    as "not better", the stop rule's reading)."""
    n = new.shape[0]
    if not (old.shape == new.shape and new_score.shape == old_score.shape == (n,)):
        raise ValueError(f"expected new/old of one shape and [N] scores, got {tuple(new.shape)}, {tuple(old.shape)}, "
                         f"{tuple(new_score.shape)}, {tuple(old_score.shape)}")
    new_better = (new_score > old_score).cpu()
    swap = torch.rand(n, generator=generator) < 0.5  # True: old is shown as Image A
    a_better = new_better ^ swap
    pick = swap.to(new.device).view(-1, *([1] * (new.dim() - 1)))
    layouts = [build_layout(COMPARE_TASK, [Turn("human", question), Turn("gpt", "Image A" if a else "Image B")])
               for a in a_better.tolist()]
    return ComparisonBatch(torch.where(pick, old, new), torch.where(pick, new, old), a_better, new_better, layouts)


@dataclass
class OwnRounds:
    """Inference rounds rolled out from a batch of degraded latents.

    Attributes:
        states: ``R + 1`` latents ``[B, C, h, w]``: ``z_lq`` then each round's output.
        scores: ``R + 1`` full-reference scores ``[B]`` of those states against the clean images.
    """

    states: list[torch.Tensor]
    scores: list[torch.Tensor]

    def pairs(
        self, question: str, balance: bool = False, generator: torch.Generator | None = None
    ) -> ComparisonBatch:
        """Every ``(round output, round input)`` pair laid out for the comparison prompt; with
        ``balance`` only as many pairs of the commoner verdict as of the rarer one are kept
        (drawn at random; all pairs when one verdict is missing)."""
        new, old = torch.cat(self.states[1:]), torch.cat(self.states[:-1])
        new_score, old_score = torch.cat(self.scores[1:]), torch.cat(self.scores[:-1])
        if balance:
            keep = balanced_rows(new_score > old_score, generator).to(new.device)
            new, old, new_score, old_score = new[keep], old[keep], new_score[keep], old_score[keep]
        return comparison_batch(new, old, new_score, old_score, question, generator)


def balanced_rows(flags: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices (sorted) of every row of the rarer value of ``flags [N]`` (bool) and as many rows of
    the commoner value drawn at random; all rows when one value does not occur."""
    flags = flags.cpu()
    yes, no = flags.nonzero().squeeze(1), (~flags).nonzero().squeeze(1)
    if len(yes) == 0 or len(no) == 0:
        return torch.arange(len(flags))
    rare, common = (yes, no) if len(yes) <= len(no) else (no, yes)
    drawn = common[torch.randperm(len(common), generator=generator)[: len(rare)]]
    return torch.cat([rare, drawn]).sort().values


@torch.no_grad()
def own_rounds(
    autoencoder: LatentAutoencoder, lqa: DepictQA, text_adapter: TextAdapter, uir: UIRModel,
    z_lq: torch.Tensor, hq: torch.Tensor, rounds: int, steps: int, metric: str,
) -> OwnRounds:
    """Roll out ``rounds`` inference rounds from ``z_lq [B, C, h, w]`` as the RAR loop does (assess
    with the LQA in eval mode, condition through the text adapter, integrate ``[0, 1]`` in
    ``steps`` Euler steps), and score every state against ``hq [B, 3, H, W]`` with ``metric``."""
    states = [z_lq]
    with train_mode(text_adapter, False):
        for _ in range(rounds):
            cond, _ = assess_and_adapt(lqa, text_adapter, states[-1], space="latent")
            states.append(integrate(uir, states[-1], cond, steps=steps).latent)
    scores = [reference_scores(autoencoder.decode(s, size=hq.shape[-2:]).clamp(0, 1), hq, metric) for s in states]
    return OwnRounds(states, scores)


def comparison_loss(lqa: DepictQA, pairs: ComparisonBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """The LQA's answer loss on comparison pairs (in its current mode), with accuracy logs."""
    images = torch.stack([pairs.image_a, pairs.image_b], dim=1).flatten(0, 1)
    out = lqa(pairs.layouts, images, space="latent")
    return out.loss, {"loss_compare": float(out.loss.detach()), "compare_accuracy": float(out.accuracy),
                      "new_better_rate": float(pairs.new_is_better.float().mean())}


def choice_loss(lqa: DepictQA, pairs: ComparisonBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """Binary cross-entropy on the quantity the stop rule thresholds: ``p_better``'s logit
    (``logit_A - logit_B`` of the answer's first differing token), against ``a_is_better``."""
    logit = lqa.p_better(pairs.image_a, pairs.image_b, space="latent").logit
    target = pairs.a_is_better.to(logit.device, logit.dtype)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target)
    right = ((logit.detach() > 0) == pairs.a_is_better.to(logit.device)).float().mean()
    return loss, {"loss_compare": float(loss.detach()), "compare_accuracy": float(right),
                  "new_better_rate": float(pairs.new_is_better.float().mean())}
