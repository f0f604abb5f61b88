"""The questions the LQA is asked at each decision step: identification and the stop rule's comparison.

``"fixed"`` asks DepictQA's own questions every time; ``"random"`` (the paper's Table S.3) draws
one phrasing per decision step: one of :data:`IDENTIFY_PROMPTS` (24 equivalent identification
questions; the first eight are DepictQA's ``qr_list`` questions, the rest our own paraphrases) for
every assessment, and one of :data:`COMPARE_PROMPTS` (16 equivalent comparison questions; the
first eight are DepictQA's comparison templates, the rest ours) for every stop decision. A draw is
a pure function of ``(seed, task, round, step)``, not of the batch or of earlier draws, so a batch
and the same images one at a time are asked the same questions. Every prompt gets DepictQA's
single-phrase tail, as the LQA's default questions do; the comparison is still read from the
next-token logits of "A" vs "B" after the answer prefix "Image".
"""

from __future__ import annotations

import hashlib

from rar.lqa.prompts import COMPARE_QUESTION, COMPARE_TEMPLATES, IDENTIFY_QUESTION, IDENTIFY_TEMPLATES, SINGLE_Q_TAIL

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

_COMPARE_PARAPHRASES: tuple[str, ...] = (
    "Of Image A and Image B, which one has the better quality?",
    "Which of the two, Image A or Image B, looks better in quality?",
    "Which image has fewer distortions, Image A or Image B?",
    "Between Image A and Image B, which shows higher visual quality?",
    "Which image is less degraded: Image A or Image B?",
    "Judge the quality of Image A and Image B. Which one is better?",
    "Looking at Image A and Image B, which one would you say is of higher quality?",
    "Which is the better-quality image, Image A or Image B?",
)

COMPARE_PROMPTS: tuple[str, ...] = (COMPARE_QUESTION,) + tuple(
    q for q, _ in COMPARE_TEMPLATES if q != COMPARE_QUESTION) + _COMPARE_PARAPHRASES
"""16 equivalent comparison questions (without the single-phrase tail); the first is DepictQA's."""

PROMPT_POOLS = ("fixed", "random")

if len(IDENTIFY_PROMPTS) != 24 or IDENTIFY_PROMPTS[0] != IDENTIFY_QUESTION or len(set(IDENTIFY_PROMPTS)) != 24:
    raise RuntimeError("IDENTIFY_PROMPTS must hold 24 distinct questions, DepictQA's first")
if len(COMPARE_PROMPTS) != 16 or len(set(COMPARE_PROMPTS)) != 16:
    raise RuntimeError("COMPARE_PROMPTS must hold 16 distinct questions, DepictQA's first")


def _draw(pool: str, prompts: tuple[str, ...], key: str) -> str | None:
    """``None`` for ``pool="fixed"``; for ``"random"`` the prompt ``key`` hashes to, with the single-phrase tail."""
    if pool == "fixed":
        return None
    if pool != "random":
        raise ValueError(f"prompt pool must be one of {PROMPT_POOLS}, got {pool!r}")
    digest = hashlib.sha256(key.encode()).digest()
    return prompts[int.from_bytes(digest[:8], "little") % len(prompts)] + SINGLE_Q_TAIL


def identification_question(pool: str, seed: int, round_index: int, step: int = 0) -> str | None:
    """The question for one assessment, or ``None`` for the LQA's default (``pool="fixed"``).

    Args:
        pool: ``"fixed"`` or ``"random"``.
        seed: the pipeline seed.
        round_index: loop round, from 1.
        step: integration step of a mid-round re-assessment (0 at the start of the round).
    """
    return _draw(pool, IDENTIFY_PROMPTS, f"{seed}:{round_index}:{step}")


def comparison_question(pool: str, seed: int, round_index: int) -> str | None:
    """The stop rule's question after round ``round_index``, or ``None`` for the LQA's default (``pool="fixed"``)."""
    return _draw(pool, COMPARE_PROMPTS, f"compare:{seed}:{round_index}")
