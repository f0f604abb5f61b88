"""The identification question the LQA is asked each time it assesses a latent.

``"fixed"`` asks DepictQA's own question every time; ``"random"`` draws one of
:data:`IDENTIFY_PROMPTS` — 24 equivalent phrasings (the paper's Table S.3 idea; these are our own
paraphrases, the first eight are DepictQA's ``qr_list`` questions) — per assessment. The draw is a
pure function of ``(seed, round, step)``, not of the batch or of earlier draws, so a batch and
the same images one at a time are asked the same questions. Every prompt gets DepictQA's
single-phrase tail, as the LQA's default identification question does.
"""

from __future__ import annotations

import hashlib

from rar.lqa.prompts import IDENTIFY_QUESTION, IDENTIFY_TEMPLATES, SINGLE_Q_TAIL

_PARAPHRASES: tuple[str, ...] = (
    "Which degradation(s) can be seen in the evaluated image?",
    "What kind of distortion(s) affect the evaluated image?",
    "Name the degradation(s) present in the evaluated image.",
    "What is wrong with the quality of the evaluated image?",
    "Which type(s) of image degradation does the evaluated image suffer from?",
    "What degradation(s) reduce the quality of the evaluated image?",
    "List the main distortion(s) you observe in the evaluated image.",
    "Which quality problem(s) are visible in the evaluated image?",
    "What has degraded the evaluated image?",
    "Describe the dominant degradation(s) of the evaluated image.",
    "Which distortion(s) dominate the evaluated image?",
    "What are the main factors degrading the evaluated image?",
    "What type(s) of corruption are observed in the evaluated image?",
    "Identify the degradation type(s) of the evaluated image.",
    "Which artifacts or distortions appear in the evaluated image?",
    "What degradation(s) would need to be removed to restore the evaluated image?",
)

IDENTIFY_PROMPTS: tuple[str, ...] = tuple(q for q, _ in IDENTIFY_TEMPLATES) + _PARAPHRASES
"""24 equivalent identification questions (without the single-phrase tail); the first is DepictQA's."""

PROMPT_POOLS = ("fixed", "random")

if len(IDENTIFY_PROMPTS) != 24 or IDENTIFY_PROMPTS[0] != IDENTIFY_QUESTION or len(set(IDENTIFY_PROMPTS)) != 24:
    raise RuntimeError("IDENTIFY_PROMPTS must hold 24 distinct questions, DepictQA's first")


def identification_question(pool: str, seed: int, round_index: int, step: int = 0) -> str | None:
    """The question for one assessment, or ``None`` for the LQA's default (``pool="fixed"``).

    Args:
        pool: ``"fixed"`` or ``"random"``.
        seed: the pipeline seed.
        round_index: loop round, from 1.
        step: integration step of a mid-round re-assessment (0 at the start of the round).
    """
    if pool == "fixed":
        return None
    if pool != "random":
        raise ValueError(f"prompt pool must be one of {PROMPT_POOLS}, got {pool!r}")
    digest = hashlib.sha256(f"{seed}:{round_index}:{step}".encode()).digest()
    return IDENTIFY_PROMPTS[int.from_bytes(digest[:8], "little") % len(IDENTIFY_PROMPTS)] + SINGLE_Q_TAIL
