"""The LQA's latent path: UIR latents → the tokens the pixel path hands DepictQA's projector.

A patch-embedding convolution turns a latent ``[B, C, h, w]`` of any size into a token grid,
a 2-D sine position code on *normalised* coordinates (so the same code spans any grid size)
is added, a Transformer encoder mixes the grid, and ``num_queries`` learnable queries
cross-attend to it (the abstractor's recipe) to give ``[B, Q, D]`` with ``D`` the CLIP width.
``lqa_align`` trains it to reproduce the pixel path's abstractor tokens of the decoded image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sine_position_code(h: int, w: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """DETR-style 2-D sine code on coordinates normalised to ``(0, 2π]``: ``[h*w, dim]``."""
    if dim % 4:
        raise ValueError(f"sine position code needs dim divisible by 4, got {dim}")
    quarter = dim // 4
    ys = (torch.arange(1, h + 1, device=device, dtype=torch.float32) / h) * 2 * math.pi
    xs = (torch.arange(1, w + 1, device=device, dtype=torch.float32) / w) * 2 * math.pi
    freq = 10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    py, px = ys[:, None] / freq, xs[:, None] / freq  # [h, q], [w, q]
    code_y = torch.cat([py.sin(), py.cos()], dim=1)[:, None, :].expand(h, w, 2 * quarter)
    code_x = torch.cat([px.sin(), px.cos()], dim=1)[None, :, :].expand(h, w, 2 * quarter)
    return torch.cat([code_y, code_x], dim=2).reshape(h * w, dim).to(dtype or torch.float32)


class LatentImageAdapter(nn.Module):
    """Latents ``[B, C, h, w]`` (any ``h, w``) → image tokens ``[B, num_queries, out_dim]``.

    Args:
        latent_channels: ``C`` (16 for SD3.5's VAE and the tiny experiment's AutoencoderKL).
        out_dim: token width; must equal the pixel path's abstractor width (CLIP hidden size).
        num_queries: tokens per image (the abstractor's query count).
        width: internal width.
        patch_size: latent pixels per token side; inputs are padded (replicate) to a multiple.
        encoder_layers, decoder_layers, nhead, dim_feedforward, dropout: Transformer settings.
    """

    def __init__(
        self,
        latent_channels: int,
        out_dim: int,
        num_queries: int,
        width: int = 1024,
        patch_size: int = 2,
        encoder_layers: int = 2,
        decoder_layers: int = 4,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_channels, self.patch_size = latent_channels, patch_size
        self.patch_embed = nn.Conv2d(latent_channels, width, kernel_size=patch_size, stride=patch_size)
        self.norm_in = nn.LayerNorm(width)
        enc = nn.TransformerEncoderLayer(width, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(enc, encoder_layers, enable_nested_tensor=False)
        dec = nn.TransformerDecoderLayer(width, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(dec, decoder_layers)
        self.queries = nn.Parameter(torch.randn(num_queries, width) * 0.02)
        self.norm_out = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, out_dim)

    @property
    def num_queries(self) -> int:
        return self.queries.shape[0]

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"LatentImageAdapter expects latents [B, {self.latent_channels}, h, w], got {tuple(latents.shape)}"
            )
        p = self.patch_size
        ph, pw = (-latents.shape[2]) % p, (-latents.shape[3]) % p
        if ph or pw:
            latents = F.pad(latents, (0, pw, 0, ph), mode="replicate")
        x = self.patch_embed(latents.to(self.patch_embed.weight.dtype))  # [B, W, gh, gw]
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = self.norm_in(x) + sine_position_code(gh, gw, x.shape[-1], x.device, x.dtype)
        memory = self.encoder(x)
        queries = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.proj_out(self.norm_out(self.decoder(queries, memory)))
