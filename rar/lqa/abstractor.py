"""DepictQA's abstractor: learnable queries cross-attending to CLIP patch features.

Same module tree as DepictQA's ``AbstractorModel`` (``abstractor.layers.N.*`` inside an
``nn.TransformerDecoder`` in sequence-first layout, ``query_embeds [Q, 1, D]``), so released
weights load by name. DepictQA adds no positional embedding here (CLIP already did).
"""

from __future__ import annotations

import torch
from torch import nn


class Abstractor(nn.Module):
    """``[B, N, D]`` patch features → ``[B, Q, D]`` query tokens.

    Args:
        hidden_dim: feature width ``D`` (CLIP's hidden size: 1024 for ViT-L/14).
        num_queries: ``Q`` learnable queries (64 in DepictQA).
        num_layers, nhead, dim_feedforward, dropout: ``nn.TransformerDecoder`` settings
            (DepictQA: 4, 8, 2048, 0.1).
    """

    def __init__(
        self,
        hidden_dim: int,
        num_queries: int = 64,
        num_layers: int = 4,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layer = nn.TransformerDecoderLayer(hidden_dim, nhead, dim_feedforward, dropout)
        self.abstractor = nn.TransformerDecoder(layer, num_layers=num_layers)
        self.query_embeds = nn.Parameter(torch.randn(num_queries, 1, hidden_dim))

    @property
    def num_queries(self) -> int:
        return self.query_embeds.shape[0]

    @property
    def hidden_dim(self) -> int:
        return self.query_embeds.shape[2]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features ``[B, N, D]`` → tokens ``[B, Q, D]``."""
        if features.ndim != 3 or features.shape[2] != self.hidden_dim:
            raise ValueError(f"Abstractor expects features [B, N, {self.hidden_dim}], got {tuple(features.shape)}")
        memory = features.permute(1, 0, 2)  # [N, B, D]
        queries = self.query_embeds.expand(-1, features.shape[0], -1)
        return self.abstractor(queries, memory).permute(1, 0, 2)
