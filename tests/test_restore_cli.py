"""scripts/restore.py: odd sizes, gray/RGBA/16-bit inputs, a corrupt file, batching, outputs."""

from __future__ import annotations

import json
import pathlib

import cv2
import numpy as np
import pytest
import torch
from helpers import load_script

from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig
from rar.testing import build_tiny_rar_pipeline
from rar.utils.image_io import load_image

ROOT = pathlib.Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def model(tmp_path_factory):
    depictqa = save_tiny_depictqa(tmp_path_factory.mktemp("depictqa"), phrases=["noise", "haze", "dark"])
    pipe = build_tiny_rar_pipeline(depictqa, LoopConfig(max_rounds=2, steps_per_round=1), uir_layers=1,
                                   max_new_tokens=3)
    return pipe.save_pretrained(tmp_path_factory.mktemp("model") / "rar")


@pytest.fixture
def inputs(tmp_path):
    """One file per conversion case, odd sizes, two of equal size (batched together), one corrupt file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 256, (17, 23), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 256, (20, 20, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "deep16.png"), rng.integers(0, 65536, (13, 9, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "rgb_a.png"), rng.integers(0, 256, (19, 26, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgb_b.png"), rng.integers(0, 256, (19, 26, 3), dtype=np.uint8))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return folder


def quantized(img: torch.Tensor) -> torch.Tensor:
    return (img.clamp(0, 1) * 255).round() / 255


def test_folder_with_every_input_kind_and_a_corrupt_file(model, inputs, tmp_path, capsys):
    restore = load_script("restore")
    out = tmp_path / "out"
    # threshold 1.0: every first round is judged not better, so each output is the converted input itself
    code = restore.main([str(model), str(inputs), "--output", str(out), "--threshold", "1.0", "--batch-size", "2",
                         "--montage", "--trajectory", "--device", "cpu", "--no-progress"])
    assert code == 1
    captured = capsys.readouterr()
    assert "corrupt.png" in captured.err and "restored 5 of 6" in captured.out
    for name in ("gray", "rgba", "deep16", "rgb_a", "rgb_b"):
        source, restored = load_image(inputs / f"{name}.png"), load_image(out / f"{name}.png")
        assert restored.shape == source.shape
        torch.testing.assert_close(restored, quantized(source), atol=1e-6, rtol=0)
        record = json.loads((out / f"{name}.json").read_text())
        assert record["stopped_by"] == "compare" and len(record["rounds"]) == 1 and record["rounds_applied"] == 0
        assert record["size"] == list(source.shape[-2:]) and record["seconds"] > 0
        montage = load_image(out / f"{name}_montage.png")
        assert montage.shape[-1] > 3 * source.shape[-1]  # input | round 1 | final, enlarged for the labels
    gray = load_image(out / "gray.png")
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert not (out / "corrupt.png").exists()
    # a second run skips what exists and still reports the corrupt file
    assert restore.main([str(model), str(inputs), "--output", str(out), "--no-progress"]) == 1
    assert "skipped 5 existing" in capsys.readouterr().out


def test_single_file_with_loop_settings(model, inputs, tmp_path):
    restore = load_script("restore")
    out = tmp_path / "single"
    code = restore.main([str(model), str(inputs / "rgb_a.png"), "--output", str(out), "--trajectory",
                         "--max-rounds", "2", "--threshold", "0.0", "--prompt-pool", "random", "--no-progress"])
    assert code == 0
    record = json.loads((out / "rgb_a.json").read_text())
    assert len(record["rounds"]) == 2 and record["stopped_by"] == "max_rounds"
    assert load_image(out / "rgb_a.png").shape == (3, 19, 26)


def test_fast_path_flags_reach_the_pipeline(model, inputs, tmp_path, monkeypatch):
    restore = load_script("restore")
    seen = []
    original = restore.RARPipeline.set_fast_paths
    monkeypatch.setattr(restore.RARPipeline, "set_fast_paths", lambda self, fast: seen.append(fast) or original(self, fast))
    code = restore.main([str(model), str(inputs / "rgb_a.png"), "--output", str(tmp_path / "fast"), "--no-progress",
                         "--attention", "math", "--merge-lora"])
    assert code == 0 and (tmp_path / "fast" / "rgb_a.png").is_file()
    assert seen[-1] == {"autocast": None, "attention": "math", "compile_uir": False, "merge_lora": True}
