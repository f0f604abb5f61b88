"""Latent tiling: cover and blend exactly, no seams at tile borders, one tile = the untiled loop,
and images over the backbone's largest side restored through scripts/restore.py."""

from __future__ import annotations

import pytest
import torch
from helpers import load_script

from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig
from rar.pipeline.tiling import TileGrid, Tiling, tile_starts
from rar.testing import build_tiny_rar_pipeline
from rar.utils.image_io import load_image, save_image


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    depictqa = save_tiny_depictqa(tmp_path_factory.mktemp("depictqa"), phrases=["noise", "haze", "dark"])
    return build_tiny_rar_pipeline(depictqa, LoopConfig(max_rounds=2, steps_per_round=2, threshold=0.0),
                                   uir_layers=1, max_new_tokens=3)


@pytest.mark.parametrize("length, tile, overlap", [(10, 8, 2), (64, 16, 4), (100, 32, 8), (33, 32, 0), (17, 16, 15)])
def test_tiles_cover_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # shared band >= overlap, no gap
    assert len(tile_starts(length, tile, overlap)) == len(starts)


def test_split_then_merge_is_the_identity_and_shares_sum_to_one():
    grid = TileGrid.build(37, 50, tile=16, overlap=4)
    z = torch.randn(2, 3, 37, 50, generator=torch.Generator().manual_seed(0))
    assert grid.split(z).shape == (2 * grid.count, 3, 16, 16)
    torch.testing.assert_close(grid.merge(grid.split(z)), z, atol=1e-6, rtol=0)
    assert float(grid.shares.sum()) == pytest.approx(1.0, abs=1e-6) and bool((grid.shares > 0).all())


def _border_step(latent: torch.Tensor, grid: TileGrid) -> tuple[float, float]:
    """Largest jump between neighbouring columns where a tile ends inside the image, and the
    99th percentile of jumps elsewhere."""
    steps = (latent[..., 1:] - latent[..., :-1]).abs().amax(dim=(0, 1, 2))  # per column boundary
    ends = {x + grid.tile_w - 1 for x in grid.cols[:-1]} | {x - 1 for x in grid.cols[1:]}
    border = steps[sorted(ends)].max()
    inside = steps[[j for j in range(len(steps)) if j not in ends]]
    return float(border), float(inside.quantile(0.99))


def test_smooth_image_restored_with_tiles_has_no_step_at_tile_borders(pipe):
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 160), indexing="ij")
    lq = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y])[None]
    pipe.tiling = Tiling(tile=16, overlap=6)
    try:
        result = pipe(lq, return_latents=True)
        grid = pipe.tile_grid(16, 40)
    finally:
        pipe.tiling = Tiling()
    assert grid is not None and grid.count == len(grid.cols) >= 3
    border, inside = _border_step(result.trajectories[0].rounds[-1].latent[None], grid)
    assert border <= 1.5 * inside, (border, inside)
    assert result.images.shape == lq.shape and len(result.trajectories[0].rounds) == 2


@pytest.mark.parametrize("overlap", [0, 8])
def test_blending_removes_the_step_that_hard_tile_edges_make(overlap):
    x = torch.linspace(0, 1, 96).expand(1, 2, 16, 96).contiguous()
    grid = TileGrid.build(16, 96, tile=24, overlap=overlap)
    tiles = grid.split(x)
    # a stand-in round whose output depends on the whole tile: each tile moves by its own mean
    border, inside = _border_step(grid.merge(tiles + tiles.mean(dim=(1, 2, 3), keepdim=True)), grid)
    smooth_step = 1 / 95
    if overlap == 0:
        assert border > 10 * smooth_step  # the seam the blending exists for
    else:
        mean_gap = 1 / len(grid.cols)  # neighbouring tile means differ by about this much
        ramp = smooth_step + 1.5 * mean_gap / overlap  # that change spread over the shared band
        assert max(border, inside) < ramp


def test_a_latent_the_backbone_takes_whole_is_one_tile(pipe):
    lq = torch.rand(2, 3, 24, 36, generator=torch.Generator().manual_seed(3))
    assert pipe.tile_grid(6, 9).count == 1
    default = pipe(lq)
    pipe.tiling = Tiling(tile=9)  # exactly the latent's longer side: still one tile
    try:
        assert pipe.tile_grid(6, 9).count == 1
        again = pipe(lq)
        pipe.tiling = Tiling(tile=4, overlap=1)
        assert pipe.tile_grid(6, 9).count == 2 * 3
        tiled = pipe(lq)
    finally:
        pipe.tiling = Tiling()
    assert torch.equal(again.images, default.images)
    assert not torch.equal(tiled.images, default.images) and tiled.images.shape == lq.shape


def test_stop_decision_is_one_per_image_from_the_tile_shares(pipe):
    pipe.tiling = Tiling(tile=16, overlap=4)
    try:
        lq = torch.rand(1, 3, 64, 100, generator=torch.Generator().manual_seed(4))
        traj = pipe.with_config(threshold=1.0)(lq).trajectories[0]
    finally:
        pipe.tiling = Tiling()
        pipe.with_config(threshold=0.0)
    assert len(traj.rounds) == 1 and not traj.rounds[0].accepted and traj.stopped_by == "compare"
    assert 0.0 <= traj.rounds[0].p_better <= 1.0


def test_restore_script_takes_an_image_over_the_models_largest_side(pipe, tmp_path):
    model = pipe.save_pretrained(tmp_path / "model")
    side = 4 * 64 + 12  # the tiny UIR takes 64 latent pixels, 256 image pixels, per side
    image = torch.rand(3, side, 40, generator=torch.Generator().manual_seed(5))
    save_image(image, tmp_path / "tall.png")
    code = load_script("restore").main([str(model), str(tmp_path / "tall.png"), "--output", str(tmp_path / "out"),
                                        "--max-rounds", "1", "--no-progress", "--device", "cpu"])
    assert code == 0 and load_image(tmp_path / "out" / "tall.png").shape == (3, side, 40)
    # --tile: smaller tiles for images the model could take whole (faster on CPU)
    code = load_script("restore").main([str(model), str(tmp_path / "tall.png"), "--output", str(tmp_path / "small"),
                                        "--max-rounds", "1", "--no-progress", "--tile", "64", "--trajectory"])
    assert code == 0 and load_image(tmp_path / "small" / "tall.png").shape == (3, side, 40)
    with pytest.raises(SystemExit) as stop:
        load_script("restore").main([str(model), str(tmp_path / "tall.png"), "--output", str(tmp_path / "x"),
                                     "--tile", "2", "--no-progress"])
    assert stop.value.code == 2
