"""Composite benchmark sets: seeded builds, reproducibility, indexing, loading, configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from scipy.io import savemat

from rar.data.benchmark_sets import MANIFEST_NAME, BenchmarkSet, build_composite_set, index_released_set
from rar.degradations import AGENTICIR_GROUPS, combination_name
from rar.utils.image_io import load_image, save_image

REPO = Path(__file__).resolve().parents[1]
SAMPLES_SET = REPO / "data" / "benchmarks" / "samples"
SMALL_GROUPS = {"A": [["rain", "haze"], ["motion_blur", "low_resolution"]], "C": [["rain", "noise", "low_resolution"]]}


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    save_image(torch.rand(3, 32, 48, generator=generator), tmp_path / "clean" / "one.png")
    save_image(torch.rand(3, 40, 28, generator=generator), tmp_path / "clean" / "two.png")
    return tmp_path / "clean"


def _hashes(bench: BenchmarkSet) -> dict[tuple[str, str], str]:
    return {(item.combination, item.name): item.sha256 for item in bench.items}


def test_build_writes_agenticir_layout_and_manifest(clean_dir, tmp_path):
    bench = build_composite_set(clean_dir, tmp_path / "set", seed=0, names=["one.png"])
    assert len(bench.items) == 16 and bench.kind == "built" and bench.seed == 0
    assert [bench.combinations(g) for g in "ABC"] == [[combination_name(c) for c in AGENTICIR_GROUPS[g]] for g in "ABC"]
    item = next(i for i in bench.items if i.combination == "haze+motion blur+low resolution" and i.name == "one.png")
    assert item.lq == tmp_path / "set" / "LQ" / "d3" / "haze+motion blur+low resolution" / "one.png"
    assert item.hq == tmp_path / "set" / "HQ" / "one.png" and item.group == "C"
    assert load_image(item.lq).shape == (3, 8, 12)  # low resolution: 1/4, not resized back
    assert [label.name for label in item.labels] == ["haze", "motion_blur", "low_resolution"]
    assert all(label.params for label in item.labels[:2]) and item.labels[0].severity
    manifest = json.loads((tmp_path / "set" / MANIFEST_NAME).read_text())
    assert manifest["seed"] == 0 and manifest["source"] == str(clean_dir) and set(manifest["hq"]) == {"one.png"}
    assert bench.verify() == []


def test_same_seed_reproduces_every_sha_and_other_seed_differs(clean_dir, tmp_path):
    first = _hashes(build_composite_set(clean_dir, tmp_path / "a", seed=7, groups=SMALL_GROUPS))
    again = _hashes(build_composite_set(clean_dir, tmp_path / "b", seed=7, groups=SMALL_GROUPS))
    other = _hashes(build_composite_set(clean_dir, tmp_path / "c", seed=8, groups=SMALL_GROUPS))
    assert first == again
    assert all(first[key] != other[key] for key in first)
    subset = build_composite_set(clean_dir, tmp_path / "d", seed=7, groups={"C": SMALL_GROUPS["C"]}, names=["two.png"])
    assert _hashes(subset) == {key: sha for key, sha in first.items() if key == ("rain+noise+low resolution", "two.png")}


def test_build_refuses_to_overwrite(clean_dir, tmp_path):
    build_composite_set(clean_dir, tmp_path / "set", groups=SMALL_GROUPS)
    lq = tmp_path / "set" / "LQ" / "d2" / "rain+haze" / "one.png"
    before = lq.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        build_composite_set(clean_dir, tmp_path / "set", seed=1, groups=SMALL_GROUPS)
    assert lq.read_bytes() == before
    rebuilt = build_composite_set(clean_dir, tmp_path / "set", seed=1, groups=SMALL_GROUPS, overwrite=True)
    assert rebuilt.seed == 1 and lq.read_bytes() != before


def test_build_rejects_bad_groups_and_names(clean_dir, tmp_path):
    with pytest.raises(ValueError, match=r"group X.*unknown degradation\(s\) \['fog'\]"):
        build_composite_set(clean_dir, tmp_path / "set", groups={"X": [["fog"]]})
    with pytest.raises(ValueError, match="three.png"):
        build_composite_set(clean_dir, tmp_path / "set", names=["three.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        build_composite_set(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_depth_maps_change_haze(clean_dir, tmp_path):
    for stem, (h, w) in {"one": (32, 48), "two": (40, 28)}.items():
        depth = np.tile(np.linspace(0.1, 5.0, w // 4, dtype=np.float32), (h // 4, 1))  # 1/4 size, far to the right
        (tmp_path / "depth" / stem).mkdir(parents=True)
        savemat(tmp_path / "depth" / stem / "predict_depth.mat", {"data_obj": depth})
    groups = {"B": [["haze", "noise"]]}
    pattern = str(tmp_path / "depth" / "{stem}" / "predict_depth.mat")
    with_depth = build_composite_set(clean_dir, tmp_path / "d", groups=groups, depth=pattern)
    without = build_composite_set(clean_dir, tmp_path / "n", groups=groups)
    assert json.loads((tmp_path / "d" / MANIFEST_NAME).read_text())["depth"] == pattern
    assert _hashes(with_depth) != _hashes(without)
    hq, lq = load_image(with_depth.items[0].hq), load_image(with_depth.items[0].lq)
    assert (lq - hq)[:, :, -4:].abs().mean() > (lq - hq)[:, :, :4].abs().mean()  # far side is hazier


def test_index_released_set(clean_dir, tmp_path):
    built = build_composite_set(clean_dir, tmp_path / "built", seed=3, groups=SMALL_GROUPS)
    released = tmp_path / "released"
    shutil.copytree(tmp_path / "built", released)
    (released / MANIFEST_NAME).unlink()
    indexed = index_released_set(released)
    assert indexed.kind == "indexed" and indexed.seed is None
    assert _hashes(indexed) == _hashes(built)
    assert {(i.group, i.combination) for i in indexed.items} == {(i.group, i.combination) for i in built.items}
    assert all(i.labels == () and i.degradations for i in indexed.items)
    with pytest.raises(FileExistsError, match="manifest.json"):
        index_released_set(released)


def test_index_rejects_unknown_or_misplaced_folders(clean_dir, tmp_path):
    build_composite_set(clean_dir, tmp_path / "set", groups=SMALL_GROUPS)
    (tmp_path / "set" / MANIFEST_NAME).unlink()
    (tmp_path / "set" / "LQ" / "d2" / "rain+haze").rename(tmp_path / "set" / "LQ" / "d3" / "rain+haze")
    with pytest.raises(ValueError, match="expected it under d2"):
        index_released_set(tmp_path / "set")
    (tmp_path / "set" / "LQ" / "d3" / "rain+haze").rename(tmp_path / "set" / "LQ" / "d2" / "rain+fog")
    with pytest.raises(ValueError, match="unknown combination folder .*rain\\+fog"):
        index_released_set(tmp_path / "set")
    shutil.rmtree(tmp_path / "set" / "LQ" / "d2" / "rain+fog")
    (tmp_path / "set" / "HQ" / "two.png").unlink()
    with pytest.raises(FileNotFoundError, match="no HQ image for .*two.png"):
        index_released_set(tmp_path / "set")


def test_load_filters_groups_and_reports_problems(clean_dir, tmp_path):
    build_composite_set(clean_dir, tmp_path / "set", names=["two.png"])
    assert [len(BenchmarkSet.load(tmp_path / "set", groups=[g]).items) for g in "ABC"] == [8, 4, 4]
    with pytest.raises(ValueError, match=r"no group\(s\) \['D'\]; available: \['A', 'B', 'C'\]"):
        BenchmarkSet.load(tmp_path / "set", groups=["D"])
    with pytest.raises(FileNotFoundError, match="task=build.*task=index"):
        BenchmarkSet.load(tmp_path / "nothing")
    bench = BenchmarkSet.load(tmp_path / "set", groups=["B"])
    save_image(torch.zeros(3, 8, 8), bench.items[0].lq, overwrite=True)
    bench.items[1].lq.unlink()
    problems = bench.verify()
    assert len(problems) == 2 and "mismatch" in problems[0] and "missing" in problems[1]


def test_committed_samples_set_matches_its_manifest():
    bench = BenchmarkSet.load(SAMPLES_SET)
    heldout = sorted(p.name for p in (REPO / "data" / "samples" / "heldout").glob("*.png"))
    assert bench.kind == "built" and bench.seed == 0 and len(bench.items) == 16 * len(heldout)
    assert sorted({i.name for i in bench.items}) == heldout
    assert bench.verify() == []


@pytest.mark.parametrize("group, count", [("A", 8), ("B", 4), ("C", 4)])
def test_samples_benchmark_configs(group, count, monkeypatch):
    monkeypatch.chdir(REPO)
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(overrides=[f"+benchmark=samples_group{group}"])
    bench = instantiate(cfg.benchmark.set)
    assert cfg.benchmark.name == f"samples_group{group}" and bench.groups == [group]
    assert len(bench.combinations()) == count


def test_single_degradation_benchmark_config_reads_dataset_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("RAR_DATA", str(tmp_path))
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(overrides=["+benchmark=gopro"])
        agentic = compose(overrides=["+benchmark=agenticir_groupB"])
    assert agentic.benchmark.root == str(tmp_path / "benchmarks" / "mio100")
    with pytest.raises(Exception, match="gopro_test.*GOPRO_Large"):
        instantiate(cfg.benchmark.set)
    for folder in ("blur", "sharp"):
        save_image(torch.rand(3, 8, 8), tmp_path / "GOPRO_Large" / "test" / "GOPR0384_11_00" / folder / "000001.png")
    bench = instantiate(cfg.benchmark.set)
    assert bench.kind == "dataset" and bench.groups == ["gopro_test"] and len(bench.items) == 1
    assert bench.items[0].degradations == ("motion_blur",)


STALE = "data/benchmarks/samples is stale (degradation engine changed?): rebuild it with " \
    "`python scripts/prepare_data.py task=build overwrite=true`"


def test_rebuilding_one_committed_sample_reproduces_manifest(tmp_path):
    """Group C's four combinations use all eight AgenticIR degradations."""
    committed = BenchmarkSet.load(SAMPLES_SET, groups=["C"])
    rebuilt = build_composite_set(
        REPO / "data" / "samples" / "heldout", tmp_path / "set", seed=0, names=["rocket.png"],
        groups={"C": AGENTICIR_GROUPS["C"]},
    )
    assert _hashes(rebuilt) == {key: sha for key, sha in _hashes(committed).items() if key[1] == "rocket.png"}, STALE


@pytest.mark.slow
def test_rebuilding_committed_samples_reproduces_manifest(tmp_path):
    committed = BenchmarkSet.load(SAMPLES_SET)
    rebuilt = build_composite_set(REPO / "data" / "samples" / "heldout", tmp_path / "set", seed=0)
    assert _hashes(rebuilt) == _hashes(committed), STALE
