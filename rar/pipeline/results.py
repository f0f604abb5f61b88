"""What a restoration loop returns: per-round records, per-image trajectories, the batch result."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rar.core.outputs import MethodOutput

STOP_REASONS = ("compare", "max_rounds")
"""Why an image's loop ended: its last round was judged worse than its input (``compare``) or it
ran all ``max_rounds`` rounds (``max_rounds``, always the case with ``stop="fixed"``)."""


@dataclass
class RoundRecord:
    """One round of the loop for one image.

    Attributes:
        text: the LQA's decoded answer for the round's input (what conditioned the restoration;
            with ``assess_every`` the first assessment of the round). Logged, never re-encoded.
        p_better: probability in ``[0, 1]`` that the round's output is better than its input
            (``stop="compare"``), or ``None`` when no comparison was made (``stop="fixed"``).
        accepted: whether the output replaced the input (False ends the loop: the input is kept).
        seconds: wall-clock seconds of the round for the whole active batch divided by its size
            (this image's share).
        latent: the round's output state on the CPU when requested — a latent ``[C, h, w]`` for
            RAR, an image ``[3, H, W]`` in ``[0, 1]`` for the naive pipeline — else ``None``.
    """

    text: str
    p_better: float | None
    accepted: bool
    seconds: float
    latent: torch.Tensor | None = None

    def as_dict(self) -> dict:
        """JSON-ready fields (the latent is left out)."""
        return {"text": self.text, "p_better": self.p_better, "accepted": self.accepted, "seconds": self.seconds}


@dataclass
class Trajectory:
    """One image's way through the loop.

    Attributes:
        rounds: every round run, in order; only the last may be rejected.
        stopped_by: one of :data:`STOP_REASONS`.
    """

    rounds: list[RoundRecord] = field(default_factory=list)
    stopped_by: str = "max_rounds"

    @property
    def rounds_applied(self) -> int:
        """Rounds whose output was kept (the restorations the final image went through)."""
        return sum(r.accepted for r in self.rounds)

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rounds]

    def as_dict(self) -> dict:
        return {
            "rounds": [r.as_dict() for r in self.rounds],
            "rounds_applied": self.rounds_applied,
            "stopped_by": self.stopped_by,
        }


@dataclass
class RestoreResult:
    """Result of restoring a batch.

    Attributes:
        images: ``[B, 3, H, W]`` float32 in ``[0, 1]``, the input's size.
        trajectories: per image, its rounds and why it stopped.
        seconds: wall-clock seconds per loop stage for the whole batch (``encode``, ``assess``,
            ``restore``, ``compare``, ``decode``; the naive pipeline adds ``text_encode``).
        detail: ``[B, 3, H, W]``, what ``LoopConfig.input_detail`` added to each decoded image
            (:meth:`rar.pipeline.RARPipeline.state_image` adds it to any round's latent), or ``None``.
    """

    images: torch.Tensor
    trajectories: list[Trajectory]
    seconds: dict[str, float] = field(default_factory=dict)
    detail: torch.Tensor | None = None

    def to_method_output(self) -> MethodOutput:
        """The evaluation harness's view: ``rounds`` counts the rounds run (including a final
        rejected one, which cost time), ``labels`` the decoded LQA text of each of them."""
        return MethodOutput(
            images=self.images,
            rounds=[len(t.rounds) for t in self.trajectories],
            labels=[t.texts for t in self.trajectories],
            seconds=dict(self.seconds),
        )
