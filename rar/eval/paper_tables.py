"""The paper's ablation tables (4, 5, 6) from evaluation run folders, in miniature.

``scripts/tiny_ablations.sh`` evaluates every variant on ``samples_group{A,B,C}`` into
``<root>/<variant>/<group>/`` (one eval run folder each, with its ``summary.csv``);
:func:`paper_tables` reads them and lays them out as the paper's tables: one row per variant,
PSNR / SSIM per group, seconds per image and mean rounds averaged over the groups. A variant
whose runs are missing is listed with "not run".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

GROUPS = ("A", "B", "C")

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "Table 4 (restorer, assessor space, condition, backbone)": (
        ("input (identity)", "identity"),
        ("RAR: noise-free flow, latent LQA, embedding condition, SD3.5-style MMDiT", "rar"),
        ("noisy conditional flow (noise start, z_lq concatenated)", "noisy"),
        ("pixel LQA (decodes every assessment)", "pixel_lqa"),
        ("text condition, pixel LQA (naive: decoded text -> text encoders)", "text_pixel"),
        ("text condition, latent LQA", "text_latent"),
        ("SD1.5-style diffusion UNet (DDPM, DDIM)", "sd15"),
    ),
    "Table 5 (iterative assessment in training)": (
        ("noise-free, iterative joint (K = 4)", "iterative"),
        ("noise-free, non-iterative joint (K = 1)", "non_iterative"),
        ("noisy, iterative joint (K = 4)", "noisy_iterative"),
        ("noisy, non-iterative joint (K = 1)", "noisy_non_iterative"),
        ("noise-free, no joint (the tiny RAR)", "rar"),
    ),
    "Table 6 (rounds)": (
        ("1 round", "rounds_1"),
        ("2 rounds", "rounds_2"),
        ("3 rounds", "rounds_3"),
        ("4 rounds", "rounds_4"),
        ("LQA stop rule (up to 4)", "stop_4"),
    ),
}
"""Table -> (row label, variant folder) in the paper's order."""


@dataclass
class VariantScores:
    """One variant: ``psnr``/``ssim`` per group (missing groups absent), mean seconds per image
    and mean rounds over the groups it has."""

    psnr: dict[str, float]
    ssim: dict[str, float]
    seconds: float | None
    rounds: float | None


def read_variant(folder: Path) -> VariantScores | None:
    """The ``summary.csv`` of each ``<folder>/<group>/`` (None when no group has one)."""
    psnr, ssim, seconds, rounds = {}, {}, [], []
    for group in GROUPS:
        summary = folder / group / "summary.csv"
        if not summary.is_file():
            continue
        with open(summary, newline="") as handle:
            row = next(csv.DictReader(handle))
        psnr[group], ssim[group] = float(row["psnr"]), float(row["ssim"])
        if row.get("seconds_per_image"):
            seconds.append(float(row["seconds_per_image"]))
        if row.get("mean_rounds"):
            rounds.append(float(row["mean_rounds"]))
    if not psnr:
        return None
    return VariantScores(psnr, ssim, _mean(seconds), _mean(rounds))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def paper_tables(root: str | Path) -> str:
    """Markdown of every table in :data:`TABLES` from the variant folders under ``root``."""
    root = Path(root)
    head = "| variant | " + " | ".join(f"{g} PSNR / SSIM" for g in GROUPS) + " | s/image | rounds |"
    out = []
    for title, rows in TABLES.items():
        out += [f"### {title}", "", head, "|---|" + "---|" * (len(GROUPS) + 2)]
        for label, variant in rows:
            scores = read_variant(root / variant)
            if scores is None:
                out.append(f"| {label} | " + " | ".join(["not run"] * len(GROUPS)) + " | | |")
                continue
            cells = [f"{scores.psnr[g]:.2f} / {scores.ssim[g]:.4f}" if g in scores.psnr else "not run" for g in GROUPS]
            sec = "" if scores.seconds is None else f"{scores.seconds:.2f}"
            rnd = "" if scores.rounds is None else f"{scores.rounds:.2f}"
            out.append(f"| {label} | " + " | ".join(cells) + f" | {sec} | {rnd} |")
        out.append("")
    return "\n".join(out)
