"""Restoring images larger than the UIR's position table: overlapping tiles in latent space.

The image is encoded once and decoded once, whole (the autoencoder is convolutional; it has
no size limit). Only the rounds are tiled: the latent is cut into
overlapping tiles no larger than the backbone takes, and every round of
:meth:`rar.pipeline.RARPipeline.forward` runs on all tiles of the active images as one batch::

    tiles = split(z)                                  # [b*T, C, t, t], image-major
    c_k = TextAdapter(LQA.assess(tile_k))             # each tile assessed on its own content
    new_k = integrate UIR from tile_k with c_k
    z_new = merge(new_k)                              # window-weighted mean where tiles overlap
    p_better(image) = sum_k share_k * p_better(tile_k of z_new, over tile_k)
    stop="compare": the whole image keeps z (and leaves the loop) if p_better(image) < threshold

So the stop decision stays one decision per image, taken on the blended latent; ``share_k`` is the
fraction of the image's blended latent that tile ``k`` contributes. Each tile's weight is 1 in its
own part and ramps linearly to near 0 across the band it shares with a neighbour (never at the
image border), so the blend has no step at tile edges. A latent the backbone takes whole is one
tile, and splitting and merging it are the identity: tiling changes nothing for those sizes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Tiling:
    """Tile settings of a pipeline, in latent pixels.

    Attributes:
        tile: tile side; a latent larger than it is tiled. ``None`` = the largest latent side the
            backbone takes (only latents the backbone cannot take whole are tiled).
        overlap: band shared by neighbouring tiles; ``None`` = a quarter of the tile.
    """

    tile: int | None = None
    overlap: int | None = None

    def grid(self, height: int, width: int, max_side: int | None, multiple: int) -> TileGrid:
        """The grid for a ``height x width`` latent (one tile when the backbone takes it whole)."""
        tile = self.tile if self.tile is not None else max_side
        if tile is None or (height <= tile and width <= tile):
            return TileGrid.build(height, width, max(height, width), 0)
        tile = tile // multiple * multiple  # the backbone's patches must tile each tile
        if tile < multiple:
            raise ValueError(f"tile side {self.tile} is below the backbone's latent multiple {multiple}")
        overlap = self.overlap if self.overlap is not None else tile // 4
        return TileGrid.build(height, width, tile, overlap)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the fewest tiles of side ``tile`` covering ``[0, length)`` with at least ``overlap``
    shared between neighbours, spread evenly (first at 0, last ending at ``length``)."""
    if length <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must lie in [0, {tile}), got {overlap}")
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


def _ramp_weights(starts: list[int], tile: int) -> torch.Tensor:
    """``[n, tile]`` weights along one axis: 1 inside, linear ramps across each shared band."""
    weights = torch.ones(len(starts), tile, dtype=torch.float64)
    position = torch.arange(tile, dtype=torch.float64)
    for k, start in enumerate(starts):
        if k > 0:
            band = starts[k - 1] + tile - start
            weights[k] = torch.minimum(weights[k], ((position + 0.5) / band).clamp(max=1))
        if k < len(starts) - 1:
            band = start + tile - starts[k + 1]
            weights[k] = torch.minimum(weights[k], ((tile - position - 0.5) / band).clamp(max=1))
    return weights


@dataclass(frozen=True)
class TileGrid:
    """How a latent ``[B, C, height, width]`` is cut into tiles ``[B * T, C, tile_h, tile_w]``.

    Attributes:
        height, width: latent size. tile_h, tile_w: tile size (the latent's own side where it is smaller).
        rows, cols: tile starts along each axis; tiles are ordered row-major, ``T = len(rows) * len(cols)``.
        window: ``[T, 1, tile_h, tile_w]`` blending weights (float32).
        shares: ``[T]`` fraction of the blended latent each tile contributes (sums to 1).
    """

    height: int
    width: int
    tile_h: int
    tile_w: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: torch.Tensor = field(repr=False)
    shares: torch.Tensor = field(repr=False)

    @classmethod
    def build(cls, height: int, width: int, tile: int, overlap: int) -> TileGrid:
        tile_h, tile_w = min(tile, height), min(tile, width)
        rows, cols = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
        wy, wx = _ramp_weights(rows, tile_h), _ramp_weights(cols, tile_w)
        window = (wy[:, None, :, None] * wx[None, :, None, :]).reshape(len(rows) * len(cols), 1, tile_h, tile_w)
        total = torch.zeros(1, height, width, dtype=torch.float64)
        for k, (y, x) in enumerate((y, x) for y in rows for x in cols):
            total[:, y:y + tile_h, x:x + tile_w] += window[k]
        shares = torch.stack([
            (window[k] / total[:, y:y + tile_h, x:x + tile_w]).sum()
            for k, (y, x) in enumerate((y, x) for y in rows for x in cols)
        ]) / (height * width)
        return cls(height, width, tile_h, tile_w, tuple(rows), tuple(cols), window.float(), shares.float())

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    def _origins(self) -> Iterator[tuple[int, int]]:
        return ((y, x) for y in self.rows for x in self.cols)

    def split(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, C, height, width]`` → ``[B * T, C, tile_h, tile_w]`` (image-major)."""
        if self.count == 1:
            return z
        tiles = [z[:, :, y:y + self.tile_h, x:x + self.tile_w] for y, x in self._origins()]
        return torch.stack(tiles, dim=1).flatten(0, 1)

    def merge(self, tiles: torch.Tensor) -> torch.Tensor:
        """Window-weighted blend of ``[B * T, C, tile_h, tile_w]`` back to ``[B, C, height, width]``."""
        if self.count == 1:
            return tiles
        tiles = tiles.unflatten(0, (-1, self.count))
        window = self.window.to(tiles.device, torch.float32)
        out = tiles.new_zeros(tiles.shape[0], tiles.shape[2], self.height, self.width, dtype=torch.float32)
        total = tiles.new_zeros(1, 1, self.height, self.width, dtype=torch.float32)
        for k, (y, x) in enumerate(self._origins()):
            out[:, :, y:y + self.tile_h, x:x + self.tile_w] += tiles[:, k].float() * window[k]
            total[:, :, y:y + self.tile_h, x:x + self.tile_w] += window[k]
        return (out / total).to(tiles.dtype)

    def per_image(self, values: torch.Tensor) -> torch.Tensor:
        """``[B * T]`` per-tile values → ``[B]``, each image's tiles weighted by their :attr:`shares`."""
        if self.count == 1:
            return values
        return (values.float().unflatten(0, (-1, self.count)) * self.shares.to(values.device)).sum(dim=1)

    def texts(self, answers: list[str]) -> list[str]:
        """``B * T`` per-tile LQA answers → per image, its tiles' distinct answers joined by ``" | "``."""
        if self.count == 1:
            return answers
        return [" | ".join(dict.fromkeys(answers[i:i + self.count])) for i in range(0, len(answers), self.count)]
