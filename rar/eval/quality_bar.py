"""The tiny model's quality bar, checked from evaluation run folders (``scripts/tiny_quality.sh``).

Reads ``<root>/<variant>/<group>/{summary,per_combination}.csv`` (eval run folders, as
:mod:`rar.eval.paper_tables` reads them) and ``<root>/stop/<group>/stop_accuracy.json``
(``scripts/stop_accuracy.py``), for the variants

* ``identity`` the degraded input; ``rar`` the model with its stop rule;
* ``rounds_1`` / ``rounds_3`` the same model, always 1 / 3 rounds (``stop=fixed``);
* ``none_uir`` the model's restorer trained with ``condition=none`` on the same budget, in the same
  RAR loop with the same LQA (the control: zero conditions; the tiny model has no ``joint`` stage),

and checks: RAR beats the input in PSNR and SSIM in every group; RAR's SSIM is at least that of
1 and of 3 fixed rounds in every group; RAR (the LQA-conditioned restorer) beats the unconditioned one
(mean PSNR and SSIM over the groups); at least 70% of the per-round answers name a degradation the
image has (the answers of the rounds RAR ran, from the ``rar`` eval's ``images.jsonl``; the
share over 3 forced rounds from ``stop/`` is shown beside it); no combination's mean SSIM is more
than 0.02 below its input's.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from rar.eval.lqa_accuracy import categories
from rar.eval.paper_tables import GROUPS, VariantScores, read_variant
from rar.lqa.evaluation import phrase_set

LABELS_PRESENT_MIN = 0.70
COMBINATION_SSIM_DROP = 0.02


@dataclass
class Check:
    """One criterion: what it asks, whether it holds, and the numbers behind it."""

    name: str
    passed: bool
    detail: str


def _combinations(folder: Path) -> dict[str, float]:
    """Mean SSIM per combination over every group folder under ``folder``."""
    out = {}
    for group in GROUPS:
        path = folder / group / "per_combination.csv"
        if path.is_file():
            with open(path, newline="") as handle:
                out.update({f"{group}:{row['combination']}": float(row["ssim"]) for row in csv.DictReader(handle)})
    return out


def _labels_present(images_jsonl: Path) -> float | None:
    """Share of the answers RAR gave in the rounds it ran (``labels`` of an eval's
    ``images.jsonl``) that name a degradation of the item's combination; None without the file."""
    if not images_jsonl.is_file():
        return None
    named = []
    for line in images_jsonl.read_text().splitlines():
        record = json.loads(line)
        truth = categories(record["combination"].split("+"))
        named += [bool(categories(phrase_set(text)) & truth) for text in record.get("labels") or []]
    return sum(named) / len(named) if named else None


def _mean(scores: VariantScores, metric: str) -> float:
    values = getattr(scores, metric)
    return sum(values.values()) / len(values)


def quality_bar(root: str | Path) -> tuple[str, list[Check]]:
    """Markdown table of the variants and the checks (a missing variant fails its checks)."""
    root = Path(root)
    names = ("identity", "rar", "rounds_1", "rounds_3", "none_uir")
    scores = {name: read_variant(root / name) for name in names}
    lines = ["| variant | " + " | ".join(f"{g} PSNR / SSIM" for g in GROUPS) + " | rounds |",
             "|---|" + "---|" * (len(GROUPS) + 1)]
    for name in names:
        s = scores[name]
        if s is None:
            lines.append(f"| {name} | " + " | ".join(["not run"] * len(GROUPS)) + " | |")
            continue
        cells = [f"{s.psnr[g]:.2f} / {s.ssim[g]:.4f}" if g in s.psnr else "not run" for g in GROUPS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'' if s.rounds is None else f'{s.rounds:.2f}'} |")

    checks = []
    rar, identity = scores["rar"], scores["identity"]
    have = rar is not None and identity is not None and len(rar.psnr) == len(identity.psnr) == len(GROUPS)
    checks.append(Check(
        "RAR beats the input in PSNR and SSIM in every group",
        have and all(rar.psnr[g] > identity.psnr[g] and rar.ssim[g] > identity.ssim[g] for g in GROUPS),
        "" if not have else ", ".join(f"{g} {rar.psnr[g] - identity.psnr[g]:+.2f} dB / {rar.ssim[g] - identity.ssim[g]:+.4f}"
                                      for g in GROUPS)))
    for fixed in ("rounds_1", "rounds_3"):
        other = scores[fixed]
        ok = rar is not None and other is not None and all(g in rar.ssim and g in other.ssim for g in GROUPS)
        checks.append(Check(
            f"RAR's SSIM >= {fixed} (stop=fixed) in every group",
            ok and all(rar.ssim[g] >= other.ssim[g] for g in GROUPS),
            "" if not ok else ", ".join(f"{g} {rar.ssim[g] - other.ssim[g]:+.4f}" for g in GROUPS)))
    none = scores["none_uir"]
    ok = rar is not None and none is not None
    checks.append(Check(
        "RAR (the LQA-conditioned restorer) beats the condition=none one (mean PSNR and SSIM)",
        ok and _mean(rar, "psnr") > _mean(none, "psnr") and _mean(rar, "ssim") > _mean(none, "ssim"),
        "" if not ok else f"{_mean(rar, 'psnr'):.2f} / {_mean(rar, 'ssim'):.4f} vs "
                          f"{_mean(none, 'psnr'):.2f} / {_mean(none, 'ssim'):.4f}"))
    shares = {g: share for g in GROUPS if (share := _labels_present(root / "rar" / g / "images.jsonl")) is not None}
    forced = {g: json.loads(path.read_text())["labels_present"] for g in GROUPS
              if (path := root / "stop" / g / "stop_accuracy.json").is_file()}
    checks.append(Check(
        f"at least {LABELS_PRESENT_MIN:.0%} of the per-round answers name a present degradation (every group)",
        len(shares) == len(GROUPS) and all(share >= LABELS_PRESENT_MIN for share in shares.values()),
        ", ".join(f"{g} {share:.0%}" for g, share in shares.items())
        + ("; every one of 3 forced rounds (stop/): " + ", ".join(f"{g} {v:.0%}" for g, v in forced.items())
           if forced else "")))
    rar_c, input_c = _combinations(root / "rar"), _combinations(root / "identity")
    drops = {k: rar_c[k] - input_c[k] for k in input_c if k in rar_c}
    worst = min(drops, key=drops.get) if drops else None
    checks.append(Check(
        f"no combination's mean SSIM more than {COMBINATION_SSIM_DROP} below its input's",
        bool(drops) and len(drops) == len(input_c) and drops[worst] >= -COMBINATION_SSIM_DROP,
        "" if worst is None else f"worst {worst} {drops[worst]:+.4f} ({len(drops)} combinations)"))
    lines += ["", "| check | holds | numbers |", "|---|---|---|"]
    lines += [f"| {c.name} | {'yes' if c.passed else 'NO'} | {c.detail} |" for c in checks]
    return "\n".join(lines), checks
