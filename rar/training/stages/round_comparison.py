"""Comparison supervision on the restorer's own rounds (an option of the ``joint`` stage; ours).

At inference the stop rule asks the LQA whether a round's output beats the round's input
(``p_better(new, over=old)``). The LQA learned comparison in ``lqa_finetune`` on synthetic pairs
of degradation levels, never on the UIR's outputs, whose artefacts are of another kind. With
``compare_weight > 0`` the joint stage therefore also runs ``compare_rounds`` inference rounds per
example (no gradients: assess once, integrate ``[0, 1]`` in ``compare_steps`` Euler steps), labels
each pair ``(round output, round input)`` by a full-reference metric against the clean image, and
adds the LQA's answer loss on the comparison prompt (``"Image A"`` / ``"Image B"``, the order drawn
at random so the answer carries no position bias). The paper trains the joint stage with the flow
loss only; ``compare_weight = 0`` (the default) is exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rar.lqa.prompts import COMPARE_TASK, PromptLayout, Turn, build_layout
from rar.training.stages.uir import psnr

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
