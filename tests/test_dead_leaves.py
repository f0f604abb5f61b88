"""Seeded dead-leaves images: deterministic, in range, power-law radii, upper leaves occlude."""

from __future__ import annotations

import pytest
import torch

from rar.data.dead_leaves import _power_law_radii, dead_leaves, write_dead_leaves


def test_same_seed_same_image_and_another_seed_another():
    a = dead_leaves((48, 40), torch.Generator().manual_seed(3), leaves=300)
    b = dead_leaves((48, 40), torch.Generator().manual_seed(3), leaves=300)
    c = dead_leaves((48, 40), torch.Generator().manual_seed(4), leaves=300)
    assert a.shape == (3, 48, 40) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_radii_follow_the_inverse_cube_law():
    radii = _power_law_radii(200_000, 2.0, 1000.0, torch.Generator().manual_seed(0))
    assert 2.0 <= radii.min() and radii.max() <= 1000.0
    # P(r < 2 r_min) = (1 - 1/4) / (1 - (r_min/r_max)^2) ~ 0.75 for p(r) ~ r^-3
    assert (radii < 4.0).float().mean().item() == pytest.approx(0.75, abs=0.01)


def test_pixels_show_palette_colours_and_the_upper_leaf_wins():
    palette = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    image = dead_leaves(32, torch.Generator().manual_seed(0), leaves=500, r_min=3.0, shading=0.0, palette=palette)
    colours = {tuple(v.tolist()) for v in image.flatten(1).T.unique(dim=0)}
    assert colours <= {(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)} | {tuple(image[:, 0, 0].tolist())}  # or the background
    # one huge first leaf covers everything: the image is its colour alone
    g = torch.Generator().manual_seed(0)
    covered = dead_leaves(16, g, leaves=3, r_min=100.0, r_max=101.0, shading=0.0, palette=palette[:1])
    assert torch.equal(covered, palette[0].view(3, 1, 1).expand(3, 16, 16))


def test_write_dead_leaves_keeps_existing_files(tmp_path):
    paths = write_dead_leaves(tmp_path, 2, size=16, seed=5, leaves=50)
    assert [p.name for p in paths] == ["dead_leaves_0000.png", "dead_leaves_0001.png"]
    before = paths[0].read_bytes()
    paths[0].write_bytes(b"kept")
    write_dead_leaves(tmp_path, 2, size=16, seed=5, leaves=50)
    assert paths[0].read_bytes() == b"kept"
    write_dead_leaves(tmp_path, 2, size=16, seed=5, leaves=50, overwrite=True)
    assert paths[0].read_bytes() == before


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="r_max"):
        dead_leaves(16, torch.Generator(), r_min=5.0, r_max=2.0)
    with pytest.raises(ValueError, match="positive size"):
        dead_leaves(0, torch.Generator())
