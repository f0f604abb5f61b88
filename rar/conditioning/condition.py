"""The conditioning interface shared by every producer and consumer of restorer conditions.

SD3.5's three text encoders, the LQA text adapter and the "no condition" baseline all produce
a :class:`Condition`; the UIR consumes one. Nothing else crosses that boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Condition:
    """Restorer conditioning, exactly the tensors SD3.5's text encoders produce.

    Attributes:
        prompt_embeds: ``[B, L, Dj]`` float; SD3.5 real scale is ``[B, 77 + 256, 4096]``
            (CLIP-L ⊕ CLIP-G hidden states zero-padded to 4096, then T5-XXL on the sequence axis).
        pooled: ``[B, Dp]`` float; SD3.5 real scale is ``[B, 2048]`` (CLIP-L ⊕ CLIP-G pooled).
    """

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor

    def __post_init__(self) -> None:
        if self.prompt_embeds.ndim != 3 or self.pooled.ndim != 2:
            raise ValueError(
                "Condition expects prompt_embeds [B, L, Dj] and pooled [B, Dp], got "
                f"{tuple(self.prompt_embeds.shape)} and {tuple(self.pooled.shape)}"
            )
        if self.prompt_embeds.shape[0] != self.pooled.shape[0]:
            raise ValueError(
                f"batch mismatch: prompt_embeds {self.prompt_embeds.shape[0]} vs pooled {self.pooled.shape[0]}"
            )

    @property
    def batch_size(self) -> int:
        return self.prompt_embeds.shape[0]

    def to(self, *args, **kwargs) -> "Condition":
        return Condition(self.prompt_embeds.to(*args, **kwargs), self.pooled.to(*args, **kwargs))

    def index(self, idx: torch.Tensor | slice | list[int]) -> "Condition":
        """Rows ``idx`` of the batch (used when per-image stop decisions shrink the batch)."""
        return Condition(self.prompt_embeds[idx], self.pooled[idx])

    @staticmethod
    def cat(conditions: list["Condition"]) -> "Condition":
        return Condition(
            torch.cat([c.prompt_embeds for c in conditions]), torch.cat([c.pooled for c in conditions])
        )

    @staticmethod
    def zeros(batch: int, seq_len: int, joint_dim: int, pooled_dim: int, **kw) -> "Condition":
        """The "no condition" baseline: all-zero embeddings of the right shapes."""
        return Condition(torch.zeros(batch, seq_len, joint_dim, **kw), torch.zeros(batch, pooled_dim, **kw))
