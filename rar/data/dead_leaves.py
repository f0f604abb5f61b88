"""Seeded dead-leaves images: occluding discs with power-law radii, a procedural stand-in for
natural photos (their edge, scale and occlusion statistics) when few training photos exist.

Each image is a stack of ``leaves`` discs; a pixel shows the first disc that covers it (the
leaf on top), the background where none does. Radii follow ``p(r) ∝ r^-3`` on
``[r_min, r_max]`` (scale invariance, as in natural images); colours are drawn from a palette
(by default uniform RGB) and each leaf carries a small linear shading gradient. The work is
vectorised over pixels and over chunks of leaves; the same seed gives the same image anywhere.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rar.utils.image_io import save_image


def _power_law_radii(n: int, r_min: float, r_max: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` radii with density ``∝ r^-3`` on ``[r_min, r_max]`` (inverse-CDF sampling)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    inv_sq = r_min ** -2 - u * (r_min ** -2 - r_max ** -2)
    return inv_sq.rsqrt().float()


def dead_leaves(
    size: int | tuple[int, int],
    generator: torch.Generator,
    leaves: int = 2000,
    r_min: float = 2.0,
    r_max: float | None = None,
    shading: float = 0.15,
    palette: torch.Tensor | None = None,
    chunk: int = 128,
) -> torch.Tensor:
    """One dead-leaves image ``[3, H, W]`` in ``[0, 1]``.

    Args:
        size: ``H`` (square) or ``(H, W)``.
        generator: the image's random stream (CPU).
        leaves: number of discs dropped (later discs lie under earlier ones).
        r_min, r_max: radius range in pixels (``r_max`` default: half the longer side).
        shading: amplitude of each leaf's linear brightness gradient across its radius.
        palette: ``[K, 3]`` colours in ``[0, 1]`` to draw from; None = uniform RGB.
        chunk: leaves processed at once (memory ``chunk * H * W`` booleans).
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if height < 1 or width < 1 or leaves < 1 or not 0 < r_min:
        raise ValueError(f"dead_leaves needs positive size, leaves and r_min, got {(height, width)}, {leaves}, {r_min}")
    r_max = max(height, width) / 2 if r_max is None else r_max
    if r_max < r_min:
        raise ValueError(f"dead_leaves: r_max {r_max} is below r_min {r_min}")
    centres = torch.rand(leaves, 2, generator=generator) * torch.tensor([height, width])
    radii = _power_law_radii(leaves, r_min, r_max, generator)
    if palette is None:
        colours = torch.rand(leaves, 3, generator=generator)
    else:
        colours = palette[torch.randint(0, palette.shape[0], (leaves,), generator=generator)].float()
    angles = torch.rand(leaves, generator=generator) * 2 * torch.pi
    directions = torch.stack([angles.sin(), angles.cos()], dim=1)  # [N, 2] in (y, x)
    background = torch.rand(3, generator=generator)

    ys = torch.arange(height, dtype=torch.float32).view(1, height, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, width) + 0.5
    image = background.view(3, 1, 1).expand(3, height, width).clone()
    free = torch.ones(height, width, dtype=torch.bool)  # not yet covered by an upper leaf
    for start in range(0, leaves, chunk):
        c, r = centres[start:start + chunk], radii[start:start + chunk]
        dy, dx = ys - c[:, 0].view(-1, 1, 1), xs - c[:, 1].view(-1, 1, 1)
        covers = (dy * dy + dx * dx) < (r * r).view(-1, 1, 1)  # [n, H, W]
        hit = covers.any(0) & free
        if not hit.any():
            continue
        top = covers.float().argmax(0)  # first (upper) leaf of this chunk covering each pixel
        idx = top[hit]
        py, px = hit.nonzero(as_tuple=True)
        d = directions[start:start + chunk][idx]
        along = ((py + 0.5 - c[idx, 0]) * d[:, 0] + (px + 0.5 - c[idx, 1]) * d[:, 1]) / r[idx]  # in [-1, 1]
        values = colours[start:start + chunk][idx] * (1 + shading * along).unsqueeze(1)  # [P, 3]
        image[:, hit] = values.T
        free &= ~hit
        if not free.any():
            break
    return image.clamp(0, 1)


def write_dead_leaves(out_dir: str | Path, count: int, size: int = 256, seed: int = 0, overwrite: bool = False,
                      **options) -> list[Path]:
    """Write ``count`` images ``dead_leaves_<i>.png`` to ``out_dir``; image ``i`` uses seed ``seed + i``.

    ``options`` go to :func:`dead_leaves`. Existing files are kept unless ``overwrite``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = out / f"dead_leaves_{i:04d}.png"
        if overwrite or not path.is_file():
            image = dead_leaves(size, torch.Generator().manual_seed(seed + i), **options)
            save_image(image, path, overwrite=True)
        paths.append(path)
    return paths
