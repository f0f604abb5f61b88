"""Model configurations of the LQA's pretrained parts, real and tiny.

Real: Vicuna-7B-v1.5 (LLaMA-2-7B architecture) and CLIP ViT-L/14 (224 px, the vision tower
DepictQA freezes). Tiny: the CPU stand-ins of the tiny experiment (``common`` dimensions:
CLIP hidden 64 with patch 8, LLaMA hidden 128).
"""

from __future__ import annotations

from transformers import CLIPVisionConfig, LlamaConfig


def vicuna_7b_v15_config() -> LlamaConfig:
    """``lmsys/vicuna-7b-v1.5``'s ``config.json`` (6.74 B parameters)."""
    return LlamaConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
        rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=False,
    )


def clip_vit_l14_config() -> CLIPVisionConfig:
    """``openai/clip-vit-large-patch14``'s vision tower (303 M parameters, 1024-d patch features)."""
    return CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    )


def tiny_llama_config(vocab_size: int, bos_token_id: int, eos_token_id: int, num_layers: int = 2) -> LlamaConfig:
    """A 128-wide LLaMA for the tiny experiment.

    ``initializer_range`` is 0.1 (about ``1/sqrt(128)``) instead of LLaMA's 0.02, which suits a
    4096-wide model: at width 128 the default leaves attention uniform for long, and the tiny
    LQA needed ~8x more steps to start reading its image tokens (measured on a clean/noisy pair).
    """
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=num_layers,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, rms_norm_eps=1e-5,
        hidden_act="silu", bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=eos_token_id,
        tie_word_embeddings=False, initializer_range=0.1,
    )


def tiny_clip_config() -> CLIPVisionConfig:
    """A 64-wide CLIP vision tower, patch 8, native size 64 (64 patches per 64x64 crop)."""
    return CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        image_size=64, patch_size=8, projection_dim=64, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    )
