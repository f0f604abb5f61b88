"""The miniature ablation tables: laid out from eval summaries, missing variants marked."""

from __future__ import annotations

import csv

from helpers import load_script

from rar.eval.paper_tables import TABLES, paper_tables, read_variant


def _summary(folder, psnr, ssim, seconds=1.5, rounds=2.0):
    folder.mkdir(parents=True)
    with open(folder / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["benchmark", "method", "psnr", "ssim", "seconds_per_image", "mean_rounds"])
        writer.writeheader()
        writer.writerow({"benchmark": "b", "method": "m", "psnr": psnr, "ssim": ssim,
                         "seconds_per_image": seconds, "mean_rounds": rounds})


def test_tables_from_summaries(tmp_path, capsys):
    for group, (p, s) in zip("ABC", [(20.0, 0.6), (21.0, 0.7), (19.0, 0.5)], strict=True):
        _summary(tmp_path / "rar" / group, p, s, seconds={"A": 1.0, "B": 2.0, "C": 3.0}[group])
    _summary(tmp_path / "noisy" / "A", 18.5, 0.55, rounds=3.0)
    scores = read_variant(tmp_path / "rar")
    assert scores.psnr == {"A": 20.0, "B": 21.0, "C": 19.0} and scores.seconds == 2.0 and scores.rounds == 2.0
    text = paper_tables(tmp_path)
    assert text.count("### Table") == len(TABLES)
    assert "| 20.00 / 0.6000 | 21.00 / 0.7000 | 19.00 / 0.5000 | 2.00 | 2.00 |" in text
    assert "| 18.50 / 0.5500 | not run | not run | 1.50 | 3.00 |" in text  # a partly evaluated variant
    assert "| input (identity) | not run | not run | not run | | |" in text
    script = load_script("paper_tables")
    assert script.main([str(tmp_path)]) == 0 and "Table 6" in capsys.readouterr().out
    assert script.main([str(tmp_path / "missing")]) == 2
