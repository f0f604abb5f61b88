"""Training datasets: shapes, determinism across workers/epochs, weights, configs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from rar.data.batch import RestorationSample, collate_samples
from rar.data.mixture import MixtureDataset
from rar.data.paired import PairedFolderDataset
from rar.data.specs import DatasetSpec
from rar.data.synthetic import SyntheticDataset
from rar.utils.image_io import save_image

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    for i, (h, w) in enumerate([(40, 52), (48, 44), (36, 36)]):
        save_image(torch.rand(3, h, w, generator=generator), tmp_path / "clean" / f"img{i}.png")
    return tmp_path / "clean"


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(overrides=["+trainer.seed=0", *overrides])


def test_synthetic_sample_shapes_and_labels(clean_dir):
    ds = SyntheticDataset(clean_dir, combinations=[["motion_blur", "low_resolution"]], crop_size=32, length=5)
    sample = ds[3]
    assert isinstance(sample, RestorationSample)
    assert sample.lq.shape == sample.hq.shape == (3, 32, 32)
    assert [label.name for label in sample.labels] == ["motion_blur", "low_resolution"]
    assert sample.name == "img0.png" and sample.source == "clean"
    assert sample.lq.min() >= 0 and sample.lq.max() <= 1
    small = SyntheticDataset(clean_dir, combinations=[["low_resolution"]], crop_size=32, resize_lq_to_hq=False)[0]
    assert small.lq.shape == (3, 8, 8) and small.hq.shape == (3, 32, 32)


def test_synthetic_rejects_unknown_names_and_bad_weights(clean_dir):
    with pytest.raises(ValueError, match=r"unknown degradation\(s\) \['nosie'\].*known: .*'noise'"):
        SyntheticDataset(clean_dir, combinations=[["nosie"]])
    with pytest.raises(ValueError, match="list of names"):
        SyntheticDataset(clean_dir, combinations=["noise"])
    with pytest.raises(ValueError, match="2 weights for 1 combinations"):
        SyntheticDataset(clean_dir, combinations=[["noise"]], weights=[1, 2])
    with pytest.raises(ValueError, match="smaller than the crop size 64"):
        SyntheticDataset(clean_dir, combinations=[["noise"]], crop_size=64)[0]


def test_unknown_degradation_in_data_config_fails(clean_dir):
    cfg = _compose(["+data=tiny_synthetic", f"data.dataset.source={clean_dir}", "data.dataset.combinations=[[haze],[blurr]]"])
    with pytest.raises(Exception, match="unknown degradation.*blurr"):
        instantiate(cfg.data.dataset, _convert_="all")


def test_tiny_synthetic_config_batches(clean_dir):
    cfg = _compose(["+data=tiny_synthetic", f"data.dataset.source={clean_dir}", "data.dataset.crop_size=32"])
    ds = instantiate(cfg.data.dataset, _convert_="all")
    assert len(ds.combinations) == 26 and ds.combinations[0] == () and len(ds) == 1024  # 2 clean + 24
    batch = next(iter(DataLoader(ds, batch_size=6, collate_fn=ds.collate)))
    assert batch.lq.shape == batch.hq.shape == (6, 3, 32, 32)
    assert len(batch.labels) == 6
    for lq, hq, labels in zip(batch.lq, batch.hq, batch.labels, strict=True):  # clean pairs carry no label
        assert bool(labels) == (not torch.equal(lq, hq))


def test_list_source_from_a_config_without_convert(clean_dir, tmp_path):
    """`source: [a, b]` reaches the dataset as Hydra's ListConfig when a script instantiates without
    `_convert_` (scripts/calibrate_stop.py did, and failed on it)."""
    other = tmp_path / "other"
    save_image(torch.rand(3, 40, 40), other / "x.png")
    cfg = _compose(["+data=tiny_synthetic", f"data.dataset.source=[{clean_dir},{other}]", "data.dataset.crop_size=32"])
    ds = instantiate(cfg.data.dataset)
    assert [p.name for p in ds.images] == ["img0.png", "img1.png", "img2.png", "x.png"] and ds.name == "clean+other"


def _as_tuples(batches) -> list:
    return [(b.lq, b.hq, [[label.to_dict() for label in row] for row in b.labels], b.names) for b in batches]


def test_determinism_across_worker_counts_and_epochs(clean_dir):
    ds = SyntheticDataset(clean_dir, combinations=[["noise"], ["rain", "jpeg"], ["haze"]], crop_size=32, length=8, seed=3)
    runs = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=ds.collate)
        runs[workers] = _as_tuples(list(loader))
    for (lq0, hq0, lab0, n0), (lq2, hq2, lab2, n2) in zip(runs[0], runs[2], strict=True):
        assert torch.equal(lq0, lq2) and torch.equal(hq0, hq2) and lab0 == lab2 and n0 == n2
    first = ds[5]
    ds.set_epoch(1)
    other_epoch = ds[5]
    ds.set_epoch(0)
    assert torch.equal(ds[5].lq, first.lq)
    assert not torch.equal(other_epoch.hq, first.hq) or not torch.equal(other_epoch.lq, first.lq)


def test_paired_dataset_crops_stay_aligned_at_scale_4(tmp_path):
    for i in range(2):
        hq = torch.rand(3, 64, 48)
        save_image(hq, tmp_path / "HR" / f"{i:04d}.png")
        save_image(F.avg_pool2d(hq[None], 4)[0], tmp_path / "LR" / f"{i:04d}x4.png")
    spec = DatasetSpec(name="toy_sr", root=tmp_path, lq_dir="LR", hq_dir="HR", hq_stem=("x4$", ""), scale=4,
                       degradations=("low_resolution",))
    ds = PairedFolderDataset(spec, crop_size=32, resize_lq_to_hq=False, seed=1)
    for index in range(len(ds)):
        sample = ds[index]
        assert sample.lq.shape == (3, 8, 8) and sample.hq.shape == (3, 32, 32)
        expected = F.avg_pool2d(sample.hq[None], 4)[0]
        assert (sample.lq - expected).abs().max() < 2.5 / 255  # 8-bit rounding of both files
        assert [label.name for label in sample.labels] == ["low_resolution"]
    resized = PairedFolderDataset(spec, crop_size=32, seed=1)[0]
    assert resized.lq.shape == resized.hq.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="multiple of the dataset scale"):
        PairedFolderDataset(spec, crop_size=30)


def test_mixture_respects_weights(tmp_path, clean_dir):
    parts = {name: SyntheticDataset(clean_dir, combinations=[["jpeg"]], crop_size=16, name=name) for name in "ab"}
    mix = MixtureDataset(parts, weights={"a": 3.0, "b": 1.0}, length=400, seed=0)
    counts = Counter(mix[i].source for i in range(len(mix)))
    assert abs(counts["a"] / 400 - 0.75) < 0.07
    only_b = MixtureDataset(parts, weights={"a": 0.0, "b": 1.0}, length=20)
    assert {only_b[i].source for i in range(20)} == {"b"}
    with pytest.raises(ValueError, match="same datasets"):
        MixtureDataset(parts, weights={"a": 1.0}, length=10)


def test_collate_rejects_mixed_shapes():
    label_free = {"labels": [], "source": "s"}
    a = RestorationSample(lq=torch.zeros(3, 8, 8), hq=torch.zeros(3, 8, 8), name="a", **label_free)
    b = RestorationSample(lq=torch.zeros(3, 8, 8), hq=torch.zeros(3, 16, 16), name="b", **label_free)
    assert collate_samples([a, a]).lq.shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="different hq shapes.*b: \\(3, 16, 16\\)"):
        collate_samples([a, b])
    with pytest.raises(ValueError, match="empty"):
        collate_samples([])


# One file pair per training corpus of configs/data/real_mixture.yaml, relative to $RAR_DATA.
TRAINING_CORPORA = {
    "DIV2K/DIV2K_train_HR/0001.png": None,
    "Flickr2K/Flickr2K_HR/000001.png": None,
    "SIDD/SIDD_Medium_Srgb/Data/0001_001_S6/0001_GT_SRGB_010.png": "SIDD/SIDD_Medium_Srgb/Data/0001_001_S6/0001_NOISY_SRGB_010.png",
    "GOPRO_Large/train/GOPR0372_07_00/sharp/000047.png": "GOPRO_Large/train/GOPR0372_07_00/blur/000047.png",
    "LOL/our485/high/2.png": "LOL/our485/low/2.png",
    "RESIDE/OTS/clear/clear/0025.png": "RESIDE/OTS/haze/part1/0025_0.8_0.1.png",
    "Rain200L/train/norain/norain-1.png": "Rain200L/train/rain/norain-1x2.png",
    "Raindrop/train/gt/0_clean.png": "Raindrop/train/data/0_rain.png",
}


def test_real_mixture_config_builds_from_specs(tmp_path, monkeypatch):
    for hq, lq in TRAINING_CORPORA.items():
        for rel in (hq, lq):
            if rel is not None:
                save_image(torch.rand(3, 64, 64), tmp_path / rel)
    monkeypatch.setenv("RAR_DATA", str(tmp_path))
    cfg = _compose(["+data=real_mixture", "data.crop_size=32"])
    mix = instantiate(cfg.data.dataset, _convert_="all")
    assert isinstance(mix, MixtureDataset) and len(mix.components) == 8
    samples = [mix.components[i].sample(0, torch.Generator().manual_seed(0)) for i in range(8)]
    batch = collate_samples(samples)
    assert batch.lq.shape == batch.hq.shape == (8, 3, 32, 32)
    assert batch.sources[0] == "div2k_train+flickr2k" and batch.sources[2] == "sidd_medium"
    (tmp_path / "LOL" / "our485" / "low" / "2.png").unlink()
    with pytest.raises(Exception, match=r"lol_train.*our485/low"):
        instantiate(cfg.data.dataset, _convert_="all")


def test_empty_combination_gives_clean_pairs():
    from rar.data.synthetic import SyntheticDataset

    data = SyntheticDataset("data/samples/train", combinations=[[]], crop_size=32, length=2, seed=0)
    sample = data[0]
    assert sample.labels == [] and torch.equal(sample.lq, sample.hq)
