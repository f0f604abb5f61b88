"""Dataset specs: every configs/dataset/*.yaml matches its published file naming; bad layouts fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from scipy.io import savemat

from rar.data.depth import load_depth
from rar.data.specs import DatasetLayoutError, DatasetSpec
from rar.utils.image_io import save_image

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# One realistic (LQ, HQ) file pair per dataset, relative to the dataset root, as published
# (LQ None = clean-only set). The spec's globs and stem regex must pair them exactly.
PUBLISHED_EXAMPLES: dict[str, tuple[str | None, str]] = {
    "sidd_val": ("input/0000_00.png", "groundtruth/0000_00.png"),
    "kodak24": (None, "kodim01.png"),
    "div2k_val_x4": ("DIV2K_valid_LR_bicubic/X4/0801x4.png", "DIV2K_valid_HR/0801.png"),
    "gopro_test": ("test/GOPR0384_11_00/blur/000001.png", "test/GOPR0384_11_00/sharp/000001.png"),
    "lol_eval15": ("eval15/low/1.png", "eval15/high/1.png"),
    "sots_outdoor": ("hazy/0001_0.8_0.2.jpg", "gt/0001.png"),
    "rain100l": ("rainy/rain-001.png", "norain-001.png"),
    "rain100h": ("rainy/rain-042.png", "norain-042.png"),
    "raindrop_test_a": ("test_a/data/0_rain.png", "test_a/gt/0_clean.png"),
    "udc_toled_test": ("test/LQ/99.png", "test/HQ/99.png"),
    "euvp_test": ("test_samples/Inp/test_p0_.jpg", "test_samples/GTr/test_p0_.jpg"),
    "mio100": (None, "HQ/0001.png"),
    "div2k_train": (None, "DIV2K_train_HR/0001.png"),
    "flickr2k": (None, "Flickr2K_HR/000001.png"),
    "sidd_medium": (
        "Data/0001_001_S6_00100_00060_3200_L/0001_NOISY_SRGB_010.png",
        "Data/0001_001_S6_00100_00060_3200_L/0001_GT_SRGB_010.png",
    ),
    "gopro_train": ("train/GOPR0372_07_00/blur/000047.png", "train/GOPR0372_07_00/sharp/000047.png"),
    "lol_train": ("our485/low/2.png", "our485/high/2.png"),
    "reside_ots": ("haze/part1/0025_0.8_0.1.jpg", "clear/clear/0025.jpg"),
    "rain200l_train": ("train/rain/norain-1x2.png", "train/norain/norain-1.png"),
    "raindrop_train": ("train/data/100_rain.png", "train/gt/100_clean.png"),
}


def _write(path: Path, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        save_image(torch.rand(3, *size), path)
    else:
        path.write_bytes(b"placeholder")  # only names matter to pairs()


def _compose_dataset(name: str, data_root: Path, monkeypatch) -> DatasetSpec:
    monkeypatch.setenv("RAR_DATA", str(data_root))
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="prepare_data", overrides=[f"dataset={name}"])
    return instantiate(cfg.dataset, _convert_="all")


def test_every_dataset_config_has_an_example():
    assert {p.stem for p in (CONFIGS / "dataset").glob("*.yaml")} == set(PUBLISHED_EXAMPLES)


@pytest.mark.parametrize("name", sorted(PUBLISHED_EXAMPLES))
def test_dataset_config_pairs_published_names(name, tmp_path, monkeypatch):
    spec = _compose_dataset(name, tmp_path, monkeypatch)
    assert spec.name == name and spec.root.is_relative_to(tmp_path)
    assert spec.url and spec.paper and spec.licence
    lq_rel, hq_rel = PUBLISHED_EXAMPLES[name]
    _write(spec.root / hq_rel)
    if lq_rel is None:
        assert spec.images() == [spec.root / hq_rel]
    else:
        _write(spec.root / lq_rel)
        (spec.root / Path(hq_rel).parent / "unrelated.txt").write_text("ignored")
        assert [(p.lq, p.hq) for p in spec.pairs()] == [(spec.root / lq_rel, spec.root / hq_rel)]
    if spec.expected_count not in (None, 1):
        with pytest.raises(DatasetLayoutError, match=f"expected {spec.expected_count}"):
            spec.check()


def test_missing_dataset_error_names_path_layout_and_url(tmp_path, monkeypatch):
    spec = _compose_dataset("gopro_test", tmp_path, monkeypatch)
    with pytest.raises(DatasetLayoutError) as info:
        spec.check()
    message = str(info.value)
    assert str(tmp_path / "GOPRO_Large") in message
    assert "test/*/blur/*" in message and "sharp" in message  # the expected layout
    assert "seungjunnah.github.io" in message  # where to download it


def _spec(tmp_path: Path, **kwargs) -> DatasetSpec:
    fields = {"name": "toy", "root": tmp_path, "lq_dir": "lq", "hq_dir": "hq", "url": "https://example.org/toy"}
    fields.update(kwargs)
    return DatasetSpec(**fields)


def test_lq_without_clean_match_is_an_error(tmp_path):
    _write(tmp_path / "lq" / "a.png")
    _write(tmp_path / "lq" / "b.png")
    _write(tmp_path / "hq" / "a.png")
    with pytest.raises(DatasetLayoutError, match=r"no clean image with stem 'b'.*hq"):
        _spec(tmp_path).pairs()


def test_missing_subfolder_and_empty_lq_are_errors(tmp_path):
    _write(tmp_path / "lq" / "a.png")
    with pytest.raises(DatasetLayoutError, match="folder not found.*hq"):
        _spec(tmp_path).pairs()
    (tmp_path / "hq").mkdir()
    with pytest.raises(DatasetLayoutError, match="no degraded images matching 'x\\*'"):
        _spec(tmp_path, lq_glob="x*").pairs()


def test_duplicate_clean_stems_are_an_error(tmp_path):
    _write(tmp_path / "lq" / "a.png")
    _write(tmp_path / "hq" / "a.png")
    (tmp_path / "hq" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetLayoutError, match="share the stem 'a'"):
        _spec(tmp_path).pairs()


def test_clean_only_set_has_no_pairs(tmp_path):
    spec = _spec(tmp_path, lq_dir=None, hq_dir=".", synthesize=("noise",))
    with pytest.raises(ValueError, match="clean-only.*noise"):
        spec.pairs()


def test_bad_spec_fields_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="hq_stem"):
        _spec(tmp_path, hq_stem=["only-one"])
    with pytest.raises(ValueError, match="scale"):
        _spec(tmp_path, scale=0)


def test_depth_map_mat_is_upsampled_cubic(tmp_path):
    depth = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    (tmp_path / "depth" / "img").mkdir(parents=True)
    savemat(tmp_path / "depth" / "img" / "predict_depth.mat", {"data_obj": depth})
    spec = _spec(tmp_path, lq_dir=None, hq_dir="HQ", depth="depth/{stem}/predict_depth.mat")
    path = spec.depth_path(Path("HQ/img.png"))
    loaded = load_depth(path, (12, 16))
    assert loaded.shape == (1, 12, 16)
    assert 0 < loaded.min() < 1 and 12 < loaded.max() < 14  # cubic upsampling of values 1..12 (slight overshoot)
    assert torch.allclose(load_depth(path, (3, 4))[0], torch.from_numpy(depth))
    with pytest.raises(DatasetLayoutError, match="missing depth map for other.png"):
        spec.depth_path(Path("HQ/other.png"))
