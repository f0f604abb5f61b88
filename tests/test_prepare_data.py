"""scripts/prepare_data.py: the Hydra entry point, each task, and the committed sample data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import load_script
from hydra import compose, initialize_config_dir
from scipy.io import savemat

from rar.data.benchmark_sets import BenchmarkSet
from rar.data.samples import SAMPLE_IMAGES, write_samples
from rar.data.sidd import export_sidd_validation
from rar.data.specs import DatasetLayoutError
from rar.utils.image_io import load_image, save_image, sha256_file

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "prepare_data.py"


def _run_task(overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="prepare_data", overrides=overrides)
    load_script("prepare_data").TASKS[cfg.task](cfg)


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    for i in range(2):
        save_image(torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(i)), tmp_path / "clean" / f"im{i}.png")
    return tmp_path / "clean"


def test_script_builds_and_refuses_to_overwrite(clean_dir, tmp_path):
    out = tmp_path / "bench"
    command = [sys.executable, str(SCRIPT), "task=build", f"build.source={clean_dir}", f"build.out={out}",
               "build.groups={A:[[noise,jpeg]],B:[[haze]]}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    first = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    bench = BenchmarkSet.load(out)
    assert bench.groups == ["A", "B"] and len(bench.items) == 4
    assert (out / "LQ" / "d2" / "noise+jpeg compression artifact" / "im0.png").is_file()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        _run_task(command[2:-1])
    _run_task([*command[2:-1], "build.seed=1", "overwrite=true"])
    assert BenchmarkSet.load(out).seed == 1


def test_index_and_verify_tasks(clean_dir, tmp_path):
    out = tmp_path / "bench"
    _run_task(["task=build", f"build.source={clean_dir}", f"build.out={out}", "build.groups={C:[[dark,defocus_blur,jpeg]]}"])
    _run_task(["task=verify", f"verify.root={out}"])
    (out / "manifest.json").rename(tmp_path / "built_manifest.json")
    _run_task(["task=index", f"index.root={out}"])
    assert BenchmarkSet.load(out).kind == "indexed"
    save_image(torch.zeros(3, 24, 32), out / "LQ" / "d3" / "dark+defocus blur+jpeg compression artifact" / "im1.png", overwrite=True)
    with pytest.raises(SystemExit, match="1 file"):
        _run_task(["task=verify", f"verify.root={out}"])


def test_check_task_reports_missing_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("RAR_DATA", str(tmp_path))
    with pytest.raises(DatasetLayoutError, match=r"(?s)lol_eval15.*LOL.*eval15/low"):
        _run_task(["task=check", "dataset=lol_eval15"])
    for folder in ("low", "high"):
        save_image(torch.rand(3, 4, 4), tmp_path / "LOL" / "eval15" / folder / "1.png")
    with pytest.raises(DatasetLayoutError, match="found 1 pairs, expected 15"):
        _run_task(["task=check", "dataset=lol_eval15"])
    with pytest.raises(SystemExit, match="needs a dataset"):
        _run_task(["task=check"])
    _run_task(["task=check_all"])  # reports every dataset as missing without raising


def test_sidd_validation_export(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    with pytest.raises(FileNotFoundError, match="ValidationGtBlocksSrgb.mat"):
        export_sidd_validation(tmp_path, tmp_path / "SIDD" / "val")
    savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": noisy // 2})
    monkeypatch.setenv("RAR_DATA", str(tmp_path))
    _run_task(["task=sidd_val", f"sidd_val.mat_dir={tmp_path}"])
    block = load_image(tmp_path / "SIDD" / "val" / "input" / "0001_02.png")
    assert torch.equal((block * 255).round().to(torch.uint8), torch.from_numpy(noisy[1, 2]).permute(2, 0, 1))
    with pytest.raises(FileExistsError):
        export_sidd_validation(tmp_path, tmp_path / "SIDD" / "val")
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="prepare_data", overrides=["dataset=sidd_val"])
    from hydra.utils import instantiate

    assert len(instantiate(cfg.dataset, _convert_="all").pairs()) == 6


def test_committed_samples_are_reproducible(tmp_path):
    pytest.importorskip("skimage", reason="scikit-image (dev extra) provides the source photos")
    written = write_samples(tmp_path)
    committed = REPO / "data" / "samples"
    assert len(written) == len(SAMPLE_IMAGES) and 8 <= sum(s.split == "train" for s in SAMPLE_IMAGES) <= 9
    for path in written:
        twin = committed / path.relative_to(tmp_path)
        assert sha256_file(path) == sha256_file(twin), twin
        image = load_image(twin)
        assert max(image.shape[-2:]) == 256 and min(image.shape[-2:]) >= 128 and image.shape[-2] % 4 == 0 == image.shape[-1] % 4
    assert (tmp_path / "ATTRIBUTION.md").read_text() == (committed / "ATTRIBUTION.md").read_text()
    with pytest.raises(FileExistsError):
        write_samples(tmp_path)


def test_committed_data_is_small():
    total = sum(p.stat().st_size for p in (REPO / "data").rglob("*") if p.is_file())
    assert total < 15 * 2**20
