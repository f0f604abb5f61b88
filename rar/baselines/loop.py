"""The loop of the baselines whose state is the image (naive, CLIP-IQA): the same rounds as RAR
(:meth:`rar.pipeline.RARPipeline.forward`), each stage supplied by a :class:`Wiring`.

Per round, for the still-active images only: ``c = condition(state)``, ``new = restore(state, c)``,
then the stop rule (:class:`rar.pipeline.rounds.ActiveRounds`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from rar.conditioning.condition import Condition
from rar.core.timing import StageClock
from rar.pipeline.base import InferencePipeline
from rar.pipeline.config import LoopConfig
from rar.pipeline.results import RestoreResult
from rar.pipeline.rounds import ActiveRounds
from rar.uir.noise import image_seeds


class Wiring(Protocol):
    """What one baseline does at each stage (states are ``[b, 3, H, W]`` batches of active images)."""

    def condition(self, state: torch.Tensor, round_index: int, step: int) -> tuple[Condition, list[str]]:
        """Assess ``state`` → the UIR condition and the assessor's text per image."""
        ...

    def restore(self, state: torch.Tensor, cond: Condition, round_index: int,
                noise: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """One round of restoration of ``state`` under ``cond`` → new state, same shape; ``noise(z)``
        gives the seeded start noise shaped like latents ``z`` of these images (noise-start UIRs)."""
        ...

    def compare(self, new: torch.Tensor, old: torch.Tensor, round_index: int) -> torch.Tensor:
        """``[b]`` probability in ``[0, 1]`` that ``new`` is better than ``old`` (after round ``round_index``)."""
        ...


def run_rounds(
    state: torch.Tensor, wiring: Wiring, config: LoopConfig, clock: StageClock, keep_states: bool = False
) -> ActiveRounds:
    """Run up to ``config.max_rounds`` rounds on a batch of images; the assessment is timed as
    ``assess``, the round's restoration as ``restore``, the comparison as ``compare`` (the wiring
    may nest finer sections). Start noise (noise-start UIRs) is seeded per image by ``config.seed``
    and its input pixels (:mod:`rar.uir.noise`). Returns the bookkeeping (final states and trajectories)."""
    rounds = ActiveRounds(state, keep_states=keep_states)
    seeds = image_seeds(state, config.seed)
    for round_index in range(1, config.max_rounds + 1):
        if rounds.done:
            break
        start, current = clock.total(), rounds.current()
        with clock.section("assess"):
            cond, texts = wiring.condition(current, round_index, 0)
        with clock.section("restore"):
            new = wiring.restore(current, cond, round_index,
                                 lambda z, r=round_index: rounds.start_noise(z, seeds, r))
        p_better = None
        if config.stop == "compare":
            with clock.section("compare"):
                p_better = wiring.compare(new, current, round_index)
        rounds.record(new, texts, p_better, config.threshold_at(round_index), clock.total() - start)
    return rounds


class PixelStatePipeline(InferencePipeline):
    """Base of the pipelines whose loop state is the (padded) image: naive and CLIP-IQA. A
    subclass supplies its :class:`Wiring`; the padding, the rounds under the
    fast paths and the crop back are shared."""

    config: LoopConfig

    def wiring(self, clock: StageClock) -> Wiring:
        raise NotImplementedError(f"{type(self).__name__} must implement wiring(clock) -> Wiring")

    @torch.no_grad()
    def forward(self, lq: torch.Tensor, return_latents: bool = False) -> RestoreResult:
        """Restore ``lq [B, 3, H, W]`` in ``[0, 1]``; ``return_latents`` keeps each round's output
        image (padded, CPU) in the trajectories' ``latent`` field (same call as RARPipeline)."""
        clock = StageClock(self.device)
        height, width = lq.shape[-2:]
        with self.fast.context(self.device):
            x = self.prepare(lq, clock)
            outcome = run_rounds(x, self.wiring(clock), self.config, clock, keep_states=return_latents)
        return RestoreResult(outcome.states[..., :height, :width], outcome.trajectories, dict(clock.seconds))

    def state_image(self, state: torch.Tensor, size: tuple[int, int], detail: torch.Tensor | None = None) -> torch.Tensor:
        """A round's kept state (a padded image ``[3, H', W']``) cropped to ``size`` (plus ``detail``
        when given, as :meth:`rar.pipeline.RARPipeline.state_image`)."""
        image = state[:, : size[0], : size[1]].cpu()
        return image if detail is None else (image + detail.cpu()).clamp(0, 1)
