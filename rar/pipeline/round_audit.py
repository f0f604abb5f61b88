"""Every round of a RAR model on an image, with the stop rule's verdict on each, for auditing the
comparator (is ``p_better`` right about whether a round helped?).

:func:`own_rounds` runs the loop for ``rounds`` rounds with every output kept (``stop="compare"``
with threshold 0, so the comparison is still asked after each round but never stops the image)
and decodes each round's latent as the loop outputs it (``input_detail`` included); the start is
the input itself (``input_floor``, what a rejected first round returns) or its decoded latent. The
caller scores the images against the clean reference (:mod:`rar.eval.stop_accuracy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rar.core.timing import StageClock
from rar.pipeline.pipeline import RARPipeline


@dataclass
class OwnRounds:
    """One image's rounds.

    Attributes:
        images: ``[rounds + 1, 3, H, W]`` in ``[0, 1]``: what a rejected first round returns (the
            input, or its reconstruction without ``input_floor``), then each round's output.
        p_better: ``[rounds]``: the LQA's probability that round ``r`` beat its input.
        texts: the LQA's answer that conditioned each round.
    """

    images: torch.Tensor
    p_better: torch.Tensor
    texts: list[str]


@torch.no_grad()
def own_rounds(pipe: RARPipeline, lq: torch.Tensor, rounds: int = 3) -> list[OwnRounds]:
    """Run ``rounds`` rounds on each image of ``lq [B, 3, H, W]``, keeping every output."""
    config = pipe.config
    try:
        pipe.config = config.replace(max_rounds=rounds, stop="compare", threshold=0.0, first_threshold=None)
        result = pipe(lq, return_latents=True)
    finally:
        pipe.config = config
    size = tuple(lq.shape[-2:])
    if config.input_floor:
        start = lq.float().cpu()
    else:
        z_lq = pipe.autoencoder.encode(pipe.prepare(lq, StageClock(pipe.device)))
        start = pipe.state_image(z_lq, size, result.detail).cpu()
    audits = []
    for i, trajectory in enumerate(result.trajectories):
        detail = None if result.detail is None else result.detail[i]
        outputs = [pipe.state_image(r.latent, size, detail) for r in trajectory.rounds]
        audits.append(OwnRounds(torch.stack([start[i], *outputs]),
                                torch.tensor([r.p_better for r in trajectory.rounds]), trajectory.texts))
    return audits

