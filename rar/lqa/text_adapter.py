"""Text adapter: LQA answer hidden states → the restorer's text conditioning, no text in between.

``seq_len`` learned queries cross-attend to the answer's hidden states (padding masked) and are
projected to the joint width, giving ``prompt_embeds [B, L, Dj]``; a pooled head reads the
masked mean of the projected states and gives ``pooled [B, Dp]``. Shapes follow the
conditioner it stands in for: SD3.5 ``[B, 333, 4096]`` / ``[B, 2048]``, tiny ``[B, 32, 64]`` /
``[B, 48]``. ``cond_align`` trains it to reproduce the conditioner's embeddings of the answer.
"""

from __future__ import annotations

import torch
from torch import nn

from rar.conditioning.condition import Condition


class TextAdapter(nn.Module):
    """``hidden [B, T, D_llm]`` (+ ``mask [B, T]``) → :class:`Condition`.

    Args:
        llm_dim: LQA hidden size (4096 for Vicuna-7B, 128 tiny).
        seq_len: ``L`` of ``prompt_embeds`` (333 for SD3.5: 77 CLIP + 256 T5).
        joint_dim: ``Dj`` (4096 for SD3.5).
        pooled_dim: ``Dp`` (2048 for SD3.5).
        width: internal width; num_layers, nhead, dim_feedforward, dropout: the query decoder.
    """

    def __init__(
        self,
        llm_dim: int,
        seq_len: int,
        joint_dim: int,
        pooled_dim: int,
        width: int = 1024,
        num_layers: int = 2,
        nhead: int = 8,
        dim_feedforward: int = 4096,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.llm_dim = llm_dim
        self.proj_in = nn.Sequential(nn.LayerNorm(llm_dim), nn.Linear(llm_dim, width))
        self.queries = nn.Parameter(torch.randn(seq_len, width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        self.proj_out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, joint_dim))
        self.pooled_head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(),
                                         nn.Linear(width, pooled_dim))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> Condition:
        if hidden.ndim != 3 or hidden.shape[-1] != self.llm_dim:
            raise ValueError(f"TextAdapter expects hidden [B, T, {self.llm_dim}], got {tuple(hidden.shape)}")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        if mask.shape != hidden.shape[:2]:
            raise ValueError(f"mask {tuple(mask.shape)} does not match hidden {tuple(hidden.shape[:2])}")
        mask = mask.bool()
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every row of mask needs at least one True token")
        x = self.proj_in(hidden.to(self.queries.dtype))
        queries = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)
        tokens = self.decoder(queries, x, memory_key_padding_mask=~mask)
        weights = mask.to(x.dtype).unsqueeze(-1)
        mean = (x * weights).sum(1) / weights.sum(1)
        return Condition(self.proj_out(tokens), self.pooled_head(mean))


class ZeroTextAdapter(nn.Module):
    """The text adapter of a UIR trained without a condition (``condition=none``): it ignores the
    LQA's answer and gives the all-zero condition that UIR saw in training
    (:class:`rar.conditioning.sources.ZeroCondition`). In a RAR model folder it makes the control
    "the same loop and stop rule, the assessor's words withheld from the restorer". No weights.

    Args: as :class:`TextAdapter` (``llm_dim`` is checked against the LQA like a trained adapter's).
    """

    def __init__(self, llm_dim: int, seq_len: int, joint_dim: int, pooled_dim: int) -> None:
        super().__init__()
        self.llm_dim, self.seq_len, self.joint_dim, self.pooled_dim = llm_dim, seq_len, joint_dim, pooled_dim

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> Condition:
        return Condition.zeros(hidden.shape[0], self.seq_len, self.joint_dim, self.pooled_dim,
                               device=hidden.device, dtype=torch.float32)
