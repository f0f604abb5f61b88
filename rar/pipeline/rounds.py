"""Per-image stopping inside a batch: which images are still in the loop, each one's last accepted
state, and their trajectories.

With ``stop="compare"`` an image whose round output is judged worse than the round's input
(``p_better < threshold``) keeps its input and leaves the batch (from the first round on); the
others take the output and go on. The batch shrinks by indexing, so each image's result does not
depend on which other images share its batch. Used by the RAR loop
(:meth:`rar.pipeline.RARPipeline.forward`) and the baselines' loop (:mod:`rar.baselines.loop`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rar.pipeline.results import RoundRecord, Trajectory
from rar.uir.noise import start_noise


class ActiveRounds:
    """The loop's bookkeeping over a batch of states ``[B, ...]`` (latents or images).

    Args:
        states: the start states (copied).
        keep_states: store each round's output state (CPU) in its :class:`RoundRecord`.
    """

    def __init__(self, states: torch.Tensor, keep_states: bool = False) -> None:
        self.states = states.clone()
        self.trajectories = [Trajectory() for _ in range(states.shape[0])]
        self.active = torch.arange(states.shape[0], device=states.device)
        self.keep_states = keep_states

    @property
    def done(self) -> bool:
        """No image is left in the loop."""
        return self.active.numel() == 0

    def changed(self) -> torch.Tensor:
        """``[B]`` bool: whether the image kept at least one round's output."""
        return torch.tensor([t.rounds_applied > 0 for t in self.trajectories], dtype=torch.bool)

    def current(self) -> torch.Tensor:
        """``[b, ...]`` the states of the images still in the loop."""
        return self.states[self.active]

    def start_noise(self, like: torch.Tensor, seeds: Sequence[int], round_index: int) -> torch.Tensor:
        """Start noise ``[b, C, h, w]`` shaped like ``like`` for the images still in the loop, from
        their image ``seeds`` (one per image of the batch; :mod:`rar.uir.noise`)."""
        return start_noise(like, [seeds[i] for i in self.active.tolist()], round_index)

    def record(self, new: torch.Tensor, texts: list[str], p_better: torch.Tensor | None, threshold: float,
               seconds: float) -> None:
        """Close a round of the active images: ``new [b, ...]`` their outputs, ``texts`` the LQA's
        answers, ``p_better [b]`` the comparison (``None``: no stop rule, every output is kept),
        ``seconds`` the round's wall-clock time for the whole active batch."""
        if p_better is None:
            accepted = torch.ones(len(new), dtype=torch.bool)
        else:
            p_better = p_better.float().cpu()
            accepted = p_better >= threshold
        share = seconds / len(new)
        keep = accepted.to(self.active.device)
        self.states[self.active[keep]] = new[keep].to(self.states.dtype)
        for j, i in enumerate(self.active.tolist()):
            self.trajectories[i].rounds.append(RoundRecord(
                text=texts[j],
                p_better=None if p_better is None else float(p_better[j]),
                accepted=bool(accepted[j]),
                seconds=share,
                latent=new[j].detach().float().cpu().clone() if self.keep_states else None,
            ))
            if not accepted[j]:
                self.trajectories[i].stopped_by = "compare"
        self.active = self.active[keep]
