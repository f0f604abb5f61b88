"""SD1.5's frozen text encoder (CLIP-L) as a :class:`Condition` producer, with a text cache.

As diffusers' ``StableDiffusionPipeline.encode_prompt`` (no CFG, ``clip_skip=None``): the prompt is
padded to the tokenizer's ``model_max_length`` (77) and the encoder's last hidden state is the
UNet's cross-attention context, ``prompt_embeds [B, 77, 768]``. SD1.5 has no pooled condition:
``pooled`` is ``[B, 0]``. Identical texts are encoded once (LRU cache per string), as in
:class:`rar.conditioning.sd3_text.SD3TextConditioner`, whose interface this shares
(``forward(texts)``, ``clear_cache``, ``seq_len``, ``joint_dim``, ``pooled_dim``, ``encoded_texts``).
The tiny stand-in (:func:`rar.testing.save_tiny_clip_text_encoder`) gives ``[B, 16, 32]``.
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, CLIPTextModel

from rar.conditioning.text_cache import CachedTextEncoder

ENCODER_DIR, TOKENIZER_DIR = "text_encoder", "tokenizer"
"""SD1.5 pipeline layout: the text encoder's and tokenizer's subfolders."""


class CLIPTextConditioner(CachedTextEncoder):
    """Texts → ``Condition(prompt_embeds [B, L, D], pooled [B, 0])``; frozen.

    Args:
        encoder: the CLIP text encoder (SD1.5: CLIP ViT-L/14's, hidden 768).
        tokenizer: its tokenizer; prompts are padded to its ``model_max_length`` (77).
        cache_size: number of distinct texts kept (LRU).
    """

    def __init__(self, encoder: CLIPTextModel, tokenizer, cache_size: int = 256) -> None:
        super().__init__(cache_size)
        if tokenizer.model_max_length > encoder.config.max_position_embeddings:
            raise ValueError(f"the tokenizer pads to {tokenizer.model_max_length} tokens but the CLIP text encoder has "
                             f"only {encoder.config.max_position_embeddings} positions")
        self.encoder, self.tokenizer = encoder, tokenizer
        self.requires_grad_(False)
        self.eval()

    @property
    def seq_len(self) -> int:
        """``L``: the tokenizer's padded length (SD1.5: 77)."""
        return self.tokenizer.model_max_length

    @property
    def joint_dim(self) -> int:
        """Width of ``prompt_embeds`` (SD1.5: 768)."""
        return self.encoder.config.hidden_size

    @property
    def pooled_dim(self) -> int:
        """SD1.5's UNet takes no pooled condition: 0."""
        return 0

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tokenizer(texts, padding="max_length", max_length=self.seq_len, truncation=True,
                             return_tensors="pt").input_ids.to(self.encoder.device)
        hidden = self.encoder(ids).last_hidden_state
        return hidden, hidden.new_zeros(len(texts), 0)


def build_clip_text_conditioner(
    pretrained: str, cache_size: int = 256, torch_dtype: str | None = None
) -> CLIPTextConditioner:
    """Load the CLIP text encoder and tokenizer from an SD1.5 folder or hub id (``text_encoder/``, ``tokenizer/``)."""
    dtype = getattr(torch, torch_dtype) if torch_dtype is not None else None
    encoder = CLIPTextModel.from_pretrained(pretrained, subfolder=ENCODER_DIR, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(pretrained, subfolder=TOKENIZER_DIR)
    return CLIPTextConditioner(encoder, tokenizer, cache_size=cache_size)
