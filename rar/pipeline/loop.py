"""The restore → assess → repeat rounds, batched, with per-image stopping.

:func:`run_rounds` is shared by RAR (:mod:`rar.pipeline.pipeline`, state = latent) and the naive
pipeline (:mod:`rar.pipeline.naive`, state = image); a :class:`Wiring` supplies what differs:
how a state is assessed into a condition, how a round restores it, how two states are compared.

Per round, for the still-active images only: ``c = condition(state)``, ``new = restore(state, c)``,
then the stop rule. With ``stop="compare"`` an image whose ``p_better(new, over=state)`` is below
the threshold keeps its state and leaves the batch (from the first round on); the others take
``new`` and go on. The batch shrinks by indexing, so each image's result does not depend on which
other images share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from rar.conditioning.condition import Condition
from rar.pipeline.config import LoopConfig
from rar.pipeline.results import RoundRecord, Trajectory
from rar.pipeline.timing import StageClock


class Wiring(Protocol):
    """What one loop variant does at each stage (states are ``[b, ...]`` batches of active images)."""

    def condition(self, state: torch.Tensor, round_index: int, step: int) -> tuple[Condition, list[str]]:
        """Assess ``state`` → the UIR condition and the LQA's decoded answer per image."""
        ...

    def restore(self, state: torch.Tensor, cond: Condition, round_index: int) -> torch.Tensor:
        """One round of restoration of ``state`` under ``cond`` → new state, same shape."""
        ...

    def compare(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """``[b]`` probability in ``[0, 1]`` that ``new`` is better than ``old``."""
        ...


@dataclass
class LoopOutcome:
    """Final states ``[B, ...]`` (each image's last accepted state) and per-image trajectories."""

    states: torch.Tensor
    trajectories: list[Trajectory]


def run_rounds(
    state: torch.Tensor, wiring: Wiring, config: LoopConfig, clock: StageClock, keep_states: bool = False
) -> LoopOutcome:
    """Run up to ``config.max_rounds`` rounds on a batch of states.

    Args:
        state: ``[B, ...]`` start states (latents for RAR, images for the naive pipeline).
        wiring: the loop variant.
        config: loop settings (``max_rounds``, ``stop``, ``threshold``).
        clock: stage timer; the assessment is timed as ``assess``, the round's restoration as
            ``restore`` and the comparison as ``compare`` (the wiring may nest finer sections).
        keep_states: store each round's output state (CPU) in its :class:`RoundRecord`.
    """
    batch = state.shape[0]
    final = state.clone()
    trajectories = [Trajectory() for _ in range(batch)]
    active = torch.arange(batch, device=state.device)
    for round_index in range(1, config.max_rounds + 1):
        if active.numel() == 0:
            break
        start = clock.total()
        current = final[active]
        with clock.section("assess"):
            cond, texts = wiring.condition(current, round_index, 0)
        with clock.section("restore"):
            new = wiring.restore(current, cond, round_index)
        if config.stop == "compare":
            with clock.section("compare"):
                p_better = wiring.compare(new, current).float().cpu()
            accepted = p_better >= config.threshold
        else:
            p_better, accepted = None, torch.ones(len(current), dtype=torch.bool)
        share = (clock.total() - start) / len(current)
        keep = accepted.to(active.device)
        final[active[keep]] = new[keep].to(final.dtype)
        for j, i in enumerate(active.tolist()):
            trajectories[i].rounds.append(RoundRecord(
                text=texts[j],
                p_better=None if p_better is None else float(p_better[j]),
                accepted=bool(accepted[j]),
                seconds=share,
                latent=new[j].detach().float().cpu().clone() if keep_states else None,
            ))
            if not accepted[j]:
                trajectories[i].stopped_by = "compare"
        active = active[keep]
    return LoopOutcome(final, trajectories)
