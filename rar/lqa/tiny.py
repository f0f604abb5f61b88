"""Tiny random "pretrained" DepictQA parts for CPU tests and the tiny experiment.

:func:`save_tiny_depictqa` writes, in the layout :func:`rar.lqa.factory.build_depictqa` reads::

    folder/vision/   CLIPVisionModel (hidden 64, patch 8, 64 px), random
    folder/llm/      LlamaForCausalLM (hidden 128), random, + a word-level tokenizer

The tokenizer is trained locally with ``tokenizers`` on the template corpus (every prompt
piece and answer form the LQA is trained on). Pre-tokenisation keeps whitespace (GPT-2 style
" word" tokens and whitespace runs) and the decoder fuses tokens back, so decoding is exact;
``</s>`` is the special end-of-sequence token (and padding, as in DepictQA).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import CLIPVisionModel, LlamaForCausalLM, PreTrainedTokenizerFast

from rar.lqa.architectures import tiny_clip_config, tiny_llama_config
from rar.lqa.prompts import (
    BRIEF_GOOD,
    COMPARE_TEMPLATES,
    IDENTIFY_TEMPLATES,
    SINGLE_Q_TAIL,
    TASK_TYPES,
    VISION_TAGS,
    Turn,
    answer_text,
    build_layout,
    identification_answer,
)

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
PRE_TOKENIZE = r" ?\w+| ?[^\s\w]|\s+(?!\S)|\s+"

# DepictQA's distortion vocabulary (degradation_rename) so real-style answers tokenize too
DEPICTQA_PHRASES = (
    "noise", "blur", "compression", "oversharpening", "pixelation", "color quantization",
    "insufficient saturation", "overly high saturation", "insufficient contrast", "overly high contrast",
    "insufficient brightness", "overly high brightness",
)


def template_corpus(phrases: Sequence[str]) -> list[str]:
    """Every text piece of every prompt/answer form, with each degradation phrase inserted."""
    forms = [p for p in phrases] + [identification_answer(p) for p in phrases] + ["None", "A", "B"]
    corpus = list(VISION_TAGS) + [" and ".join(phrases), ", ".join(phrases)]
    for task in TASK_TYPES:
        for question, brief in IDENTIFY_TEMPLATES + COMPARE_TEMPLATES:
            for form in forms:
                for q, a in ((question + SINGLE_Q_TAIL, form), (question, brief.format(form)), (question, BRIEF_GOOD)):
                    layout = build_layout(task, [Turn("human", q), Turn("gpt", a), Turn("human", q), Turn("gpt", a)])
                    corpus.extend(layout.segments)
                    corpus.extend(text for text, _ in layout.pieces)
    corpus += [answer_text(f"Image {x}") for x in "AB"]
    # special tokens are split off before pre-tokenisation at run time: do the same here
    return [part for text in corpus for part in text.split("</s>") if part]


def train_word_tokenizer(corpus: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``corpus`` (exact decode; vision tags are single tokens)."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PRE_TOKENIZE), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1))
    tok.add_tokens([AddedToken(tag, normalized=False, single_word=False) for tag in VISION_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>",
        clean_up_tokenization_spaces=False,
    )


def degradation_phrases() -> list[str]:
    """Display names of our degradation engine plus DepictQA's distortion names."""
    from rar.degradations import DEGRADATIONS, display_name

    return sorted({display_name(name) for name in DEGRADATIONS} | set(DEPICTQA_PHRASES))


def save_tiny_depictqa(
    folder: str | Path, phrases: Sequence[str] | None = None, llm_layers: int = 2, seed: int = 0
) -> Path:
    """Write a tiny random CLIP vision tower, LLaMA and word-level tokenizer under ``folder``.

    Args:
        folder: output folder (``vision/`` and ``llm/`` are created inside).
        phrases: degradation phrases the answers use (default: :func:`degradation_phrases`).
        llm_layers: LLaMA depth (2-4).
        seed: weight initialisation seed.

    Returns:
        ``folder`` as a Path.
    """
    folder = Path(folder)
    tokenizer = train_word_tokenizer(template_corpus(list(phrases) if phrases is not None else degradation_phrases()))
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        clip = CLIPVisionModel(tiny_clip_config())
        config = tiny_llama_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, llm_layers)
        llm = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    clip.save_pretrained(folder / "vision")
    llm.save_pretrained(folder / "llm")
    tokenizer.save_pretrained(folder / "llm")
    return folder
