"""A figure of one image's way through the loop: input | each round's output | final.

Each round's tile is labelled with the LQA's decoded answer that conditioned it, the comparison
probability and whether the output was kept (a rejected round is shown but not used). Small
images are enlarged by an integer factor (nearest neighbour) so the labels fit.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from rar.pipeline.results import Trajectory

LINE_HEIGHT = 12
MAX_LINES = 4


def _tile(img: torch.Tensor, scale: int) -> Image.Image:
    pixels = (img.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    tile = Image.fromarray(np.ascontiguousarray(pixels))
    return tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST) if scale > 1 else tile


def _label(round_index: int, text: str, p_better: float | None, accepted: bool) -> str:
    verdict = "kept" if accepted else "rejected"
    score = "" if p_better is None else f" p={p_better:.2f}"
    return f"round {round_index}:{score} {verdict} | {text or '(empty)'}"


def round_montage(
    lq: torch.Tensor, round_images: list[torch.Tensor], trajectory: Trajectory, final: torch.Tensor,
    min_side: int = 128,
) -> torch.Tensor:
    """Compose the figure.

    Args:
        lq: ``[3, H, W]`` input in ``[0, 1]``.
        round_images: per round of ``trajectory``, its output image ``[3, H, W]``.
        trajectory: the image's rounds (texts, probabilities, verdicts).
        final: ``[3, H, W]`` the pipeline's output.
        min_side: tiles are enlarged until their shorter side reaches at least this.

    Returns:
        ``[3, H', W']`` float in ``[0, 1]``.
    """
    if len(round_images) != len(trajectory.rounds):
        raise ValueError(f"{len(round_images)} round images for a trajectory of {len(trajectory.rounds)} rounds")
    height, width = lq.shape[-2:]
    scale = max(1, math.ceil(min_side / min(height, width)))
    tiles = [(_tile(lq, scale), "input")]
    for k, (img, record) in enumerate(zip(round_images, trajectory.rounds, strict=True), start=1):
        tiles.append((_tile(img, scale), _label(k, record.text, record.p_better, record.accepted)))
    tiles.append((_tile(final, scale), f"final ({trajectory.rounds_applied} kept, stopped by {trajectory.stopped_by})"))
    tile_w, tile_h = width * scale, height * scale
    chars = max(8, tile_w // 6)
    wrapped = [textwrap.wrap(label, chars)[:MAX_LINES] for _, label in tiles]
    header = LINE_HEIGHT * max(len(lines) for lines in wrapped) + 4
    pad = 4
    canvas = Image.new("RGB", (len(tiles) * (tile_w + pad) + pad, header + tile_h + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, ((tile, _), lines) in enumerate(zip(tiles, wrapped, strict=True)):
        x = pad + i * (tile_w + pad)
        for j, line in enumerate(lines):
            draw.text((x, pad + j * LINE_HEIGHT), line, fill="black", font=font)
        canvas.paste(tile, (x, pad + header))
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255
