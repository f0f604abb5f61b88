"""Tiny random stand-ins for SD3.5's text encoders, saved in the SD3.5 pipeline folder layout.

``save_tiny_sd3_text_encoders(folder)`` writes ``text_encoder`` (CLIP-L stand-in, hidden 16),
``text_encoder_2`` (CLIP-G stand-in, hidden 32), ``text_encoder_3`` (T5 stand-in, d_model 64) and
``tokenizer{,_2,_3}`` (one word-level tokenizer over a degradation vocabulary, max length 16), so
:func:`rar.conditioning.sd3_text.build_sd3_text_conditioner` loads them exactly like the real ones.
Result: ``prompt_embeds [B, 16 + 16, 64]``, ``pooled [B, 16 + 32]``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, PreTrainedTokenizerFast, T5Config, T5EncoderModel

from rar.conditioning.sd3_text import SUBFOLDERS

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")

DEGRADATION_VOCABULARY = (
    "noise gaussian poisson blur motion defocus haze hazy fog rain rainy streaks dark darkness low light "
    "lowlight resolution jpeg compression artifact artifacts real world snow raindrop underwater color colour "
    "cast contrast brightness brighten darken over under exposure saturation oversharpen pixelate quantization "
    "very medium high mild severe slight no none clean image photo the a an of and with is are in this "
    "degradation degradations degraded primary observed evaluated"
).split() + [",", ".", "+", "-", "(", ")"]
"""Words of the tiny tokenizers: degradation names as ``rar.degradations`` describes them, plus glue."""

MAX_LENGTH = 16


def build_word_tokenizer(words: Iterable[str], max_length: int = MAX_LENGTH) -> PreTrainedTokenizerFast:
    """A lower-casing, whitespace/punctuation-splitting word-level tokenizer: ``<bos> words <eos>``,
    padded with ``<pad>``, unknown words → ``<unk>``."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in words:
        vocab.setdefault(w.lower(), len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        model_max_length=max_length,
    )


def save_tiny_sd3_text_encoders(
    folder: str | pathlib.Path, words: Iterable[str] = DEGRADATION_VOCABULARY, seed: int = 0
) -> pathlib.Path:
    """Write the tiny stand-ins to ``folder`` (created) and return it. Deterministic for a ``seed``;
    the global RNG is left untouched."""
    folder = pathlib.Path(folder)
    tokenizer = build_word_tokenizer(words)
    ids = dict(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    clip = dict(num_hidden_layers=2, max_position_embeddings=MAX_LENGTH, **ids)
    configs = {
        "clip_l": CLIPTextConfig(
            hidden_size=16, intermediate_size=32, num_attention_heads=2, projection_dim=16, **clip
        ),
        "clip_g": CLIPTextConfig(
            hidden_size=32, intermediate_size=64, num_attention_heads=4, projection_dim=32, **clip
        ),
        "t5": T5Config(
            d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
            relative_attention_num_buckets=8, decoder_start_token_id=ids["pad_token_id"], **ids,
        ),
    }
    classes = {"clip_l": CLIPTextModelWithProjection, "clip_g": CLIPTextModelWithProjection, "t5": T5EncoderModel}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for key, (encoder_dir, tokenizer_dir) in SUBFOLDERS.items():
            classes[key](configs[key]).save_pretrained(folder / encoder_dir)
            tokenizer.save_pretrained(folder / tokenizer_dir)
    return folder
