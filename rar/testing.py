"""Tiny random models for the CPU tests and ``scripts/make_tiny_models.py`` (no downloads).

* :func:`save_tiny_sd3_text_encoders` writes stand-ins for SD3.5's text encoders in the SD3.5
  pipeline folder layout: ``text_encoder`` (CLIP-L stand-in, hidden 16), ``text_encoder_2``
  (CLIP-G stand-in, hidden 32), ``text_encoder_3`` (T5 stand-in, d_model 64) and
  ``tokenizer{,_2,_3}`` (one word-level tokenizer over a degradation vocabulary, max length 16), so
  :func:`rar.conditioning.sd3_text.build_sd3_text_conditioner` loads them exactly like the real
  ones. Result: ``prompt_embeds [B, 16 + 16, 64]``, ``pooled [B, 16 + 32]``.
* :func:`save_tiny_clip_text_encoder` writes a stand-in for SD1.5's CLIP-L text encoder in the SD1.5
  pipeline layout (``text_encoder/``, hidden 32, and ``tokenizer/``, max length 16), loaded by
  :func:`rar.conditioning.clip_text.build_clip_text_conditioner`: ``prompt_embeds [B, 16, 32]``,
  ``pooled [B, 0]``.
* :func:`build_tiny_rar_pipeline` / :func:`save_tiny_rar_model`: a randomly initialised tiny RAR
  pipeline, same code path as a trained model: the LQA loads the tiny "pretrained" LLaMA/CLIP
  folders written by :func:`rar.lqa.tiny.save_tiny_depictqa` through
  :func:`rar.lqa.factory.build_depictqa`; the UIR is the ``tiny`` SD3 preset (optionally
  shallower); the autoencoder is a random :data:`rar.uir.autoencoders.TINY_VAE` (:func:`build_tiny_autoencoder`)::

    HF_HUB_OFFLINE=1 python -c "from rar.testing import save_tiny_rar_model; save_tiny_rar_model('runs/tiny_random_rar')"
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
)

from rar.conditioning.clip_text import ENCODER_DIR, TOKENIZER_DIR
from rar.conditioning.sd3_text import SUBFOLDERS
from rar.lqa.abstractor import Abstractor
from rar.lqa.factory import build_depictqa
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.text_adapter import TextAdapter
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline.config import LoopConfig
from rar.pipeline.pipeline import RARPipeline
from rar.uir.autoencoders import KLAutoencoder, tiny_vae
from rar.uir.backbones import SD3_PRESETS, build_sd3_transformer

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
    folder: str | Path, words: Iterable[str] = DEGRADATION_VOCABULARY, seed: int = 0
) -> Path:
    """Write the tiny stand-ins to ``folder`` (created) and return it. Deterministic for a ``seed``;
    the global RNG is left untouched."""
    folder = Path(folder)
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


def save_tiny_clip_text_encoder(
    folder: str | Path, words: Iterable[str] = DEGRADATION_VOCABULARY, seed: int = 0
) -> Path:
    """Write the tiny CLIP-L stand-in (SD1.5 layout) to ``folder`` and return it. Deterministic for
    a ``seed``; the global RNG is left untouched."""
    folder = Path(folder)
    tokenizer = build_word_tokenizer(words)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, hidden_size=32, intermediate_size=64, num_attention_heads=2,
        num_hidden_layers=2, max_position_embeddings=MAX_LENGTH,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        CLIPTextModel(config).save_pretrained(folder / ENCODER_DIR)
    tokenizer.save_pretrained(folder / TOKENIZER_DIR)
    return folder


def build_tiny_autoencoder(seed: int = 0) -> KLAutoencoder:
    """A random tiny ``AutoencoderKL`` (:data:`rar.uir.autoencoders.TINY_VAE`: 16 channels, stride 4)
    with unit scale and no shift (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return KLAutoencoder(tiny_vae(), scaling_factor=1.0, shift_factor=0.0)


def save_tiny_autoencoder(folder: str | Path, seed: int = 0) -> Path:
    """Write :func:`build_tiny_autoencoder` as ``folder/vae`` — the layout ``stage=autoencoder``
    exports and :func:`rar.uir.autoencoders.build_kl_autoencoder` loads (like SD3.5's ``vae/``)."""
    folder = Path(folder)
    vae = build_tiny_autoencoder(seed).vae
    vae.register_to_config(scaling_factor=1.0, shift_factor=0.0)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    return folder


def build_tiny_rar_pipeline(
    depictqa_dir: str | Path,
    config: LoopConfig | None = None,
    uir_layers: int = 4,
    max_new_tokens: int = 16,
    lora_std: float = 0.0,
    seed: int = 0,
    concat_lq: bool = False,
) -> RARPipeline:
    """A random tiny pipeline (16-channel latents of a random tiny ``AutoencoderKL``, LLaMA 128-d, text adapter → ``[B, 32, 64]`` / ``[B, 48]``).

    Args:
        depictqa_dir: a folder written by :func:`save_tiny_depictqa` (``llm/`` and ``vision/``).
        config: loop settings.
        uir_layers: MMDiT depth (the ``tiny`` preset has 4).
        max_new_tokens: the LQA's answer budget.
        lora_std: if > 0, LoRA ``B`` matrices are drawn from ``N(0, lora_std)`` instead of zero, so
            the adapter changes the LLM's outputs (tests of LoRA saving need that).
        seed: initialisation seed (the global RNG is left untouched).
        concat_lq: a noise-start UIR (the noisy ablation: input ``[x_t, z_lq]``; its widened input
            weights are drawn at random here so that ``z_lq`` matters).
    """
    depictqa_dir = Path(depictqa_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        abstractor = Abstractor(64, num_queries=16, num_layers=1, nhead=4, dim_feedforward=128)
        image_adapter = LatentImageAdapter(16, 64, 16, width=64, patch_size=2, encoder_layers=1, decoder_layers=1,
                                           nhead=4, dim_feedforward=128)
        lqa = build_depictqa(str(depictqa_dir / "llm"), abstractor, str(depictqa_dir / "vision"), image_adapter,
                             image_space="latent", max_new_tokens=max_new_tokens)
        if lora_std > 0:
            with torch.no_grad():
                for name, param in lqa.llm.named_parameters():
                    if "lora_B" in name:
                        param.normal_(0.0, lora_std)
        uir = build_sd3_transformer(config=dict(SD3_PRESETS["tiny"], num_layers=uir_layers), concat_lq=concat_lq)
        if concat_lq:
            with torch.no_grad():
                uir.backbone.pos_embed.proj.weight.normal_(0.0, 0.05)
        text_adapter = TextAdapter(128, seq_len=32, joint_dim=64, pooled_dim=48, width=64, num_layers=1, nhead=4,
                                   dim_feedforward=128)
    return RARPipeline(build_tiny_autoencoder(seed), uir, lqa, text_adapter, config)


def save_tiny_rar_model(folder: str | Path, config: LoopConfig | None = None, seed: int = 0) -> Path:
    """Write a random tiny model folder (its ``depictqa/`` parts go to ``<folder>.parts``)."""
    folder = Path(folder)
    parts = save_tiny_depictqa(folder.with_name(folder.name + ".parts"), seed=seed)
    return build_tiny_rar_pipeline(parts, config, seed=seed).save_pretrained(folder)
