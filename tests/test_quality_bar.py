"""rar.eval.quality_bar: the tiny model's checks, on hand-made evaluation folders."""

from __future__ import annotations

import json
from pathlib import Path

from rar.eval.quality_bar import quality_bar

HEAD = "benchmark,method,psnr,ssim,seconds_per_image,mean_rounds\n"


def _variant(root: Path, name: str, psnr: float, ssim: float, combination_ssim: dict[str, float] | None = None):
    for group in "ABC":
        folder = root / name / group
        folder.mkdir(parents=True)
        (folder / "summary.csv").write_text(HEAD + f"samples_group{group},{name},{psnr},{ssim},1.0,1.5\n")
        rows = combination_ssim or {"noise+haze": ssim, "rain+dark": ssim}
        (folder / "per_combination.csv").write_text(
            "combination,images,psnr,ssim\n" + "".join(f"{c},3,{psnr},{s}\n" for c, s in rows.items()))


def _answers(root: Path, labels: dict[str, list[str]]):
    """The rar eval's images.jsonl: per combination, the answers of the rounds it ran."""
    for group in "ABC":
        (root / "rar" / group / "images.jsonl").write_text("".join(
            json.dumps({"key": f"{c}/x.png", "combination": c, "labels": answers}) + "\n"
            for c, answers in labels.items()))


def _stop(root: Path, share: float):
    for group in "ABC":
        (root / "stop" / group).mkdir(parents=True)
        (root / "stop" / group / "stop_accuracy.json").write_text(json.dumps({"labels_present": share}))


def test_every_check_holds_on_a_good_model(tmp_path):
    _variant(tmp_path, "identity", 18.0, 0.55)
    _variant(tmp_path, "rar", 19.0, 0.60)
    _variant(tmp_path, "rounds_1", 18.8, 0.59)
    _variant(tmp_path, "rounds_3", 17.0, 0.50)
    _variant(tmp_path, "none_uir", 18.2, 0.57)
    _answers(tmp_path, {"noise+haze": ["Haze, noise", "Noise"], "rain+dark": ["Rain"]})
    _stop(tmp_path, 0.5)  # forced rounds: shown, not checked
    table, checks = quality_bar(tmp_path)
    assert [c.passed for c in checks] == [True] * 6, table
    assert "| rar | 19.00 / 0.6000" in table


def test_each_failure_is_reported(tmp_path):
    _variant(tmp_path, "identity", 18.0, 0.55)
    _variant(tmp_path, "rar", 19.0, 0.54, {"noise+haze": 0.60, "rain+dark": 0.52})  # SSIM below the input
    _variant(tmp_path, "rounds_1", 18.8, 0.56)
    _variant(tmp_path, "none_uir", 19.1, 0.53)  # higher PSNR: the control wins
    _answers(tmp_path, {"noise+haze": ["Haze", "Rain"], "rain+dark": ["Noise, jpeg compression artifact"]})
    _stop(tmp_path, 0.9)
    table, checks = quality_bar(tmp_path)  # rounds_3 not run
    assert [c.passed for c in checks] == [False] * 6, table
    assert "worst A:rain+dark -0.0300" in checks[-1].detail
    assert checks[4].detail.startswith("A 33%, B 33%, C 33%; every one of 3 forced rounds (stop/): A 90%")
    assert "| rounds_3 | not run" in table
