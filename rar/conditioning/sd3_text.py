"""SD3.5's three frozen text encoders as a :class:`Condition` producer, with a text cache.

The composition follows diffusers' ``StableDiffusion3Pipeline.encode_prompt`` (no CFG, one image
per prompt, ``clip_skip=None``):

* CLIP-L and CLIP-G (``CLIPTextModelWithProjection``): penultimate hidden states
  (``hidden_states[-2]``), padded to the CLIP tokenizer's ``model_max_length`` (77), and
  ``text_embeds`` (the projected pooled output);
* T5-XXL (``T5EncoderModel``): last hidden state, padded/truncated to ``t5_max_length`` (256);
* ``prompt_embeds = cat([pad(cat([h_L, h_G], -1), to T5 width), h_T5], dim=-2)`` → ``[B, 77+256, 4096]``;
* ``pooled = cat([pooled_L, pooled_G], -1)`` → ``[B, 2048]``.

Identical texts are encoded once: results are kept per string in an LRU cache (no text is ever
re-encoded while it stays cached). The tiny stand-ins (``rar.testing``) give
``[B, 32, 64]`` and ``[B, 48]``.
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, CLIPTextModelWithProjection, T5EncoderModel

from rar.conditioning.text_cache import CachedTextEncoder
from rar.utils.paths import pretrained_source

SUBFOLDERS = {
    "clip_l": ("text_encoder", "tokenizer"),
    "clip_g": ("text_encoder_2", "tokenizer_2"),
    "t5": ("text_encoder_3", "tokenizer_3"),
}
"""SD3(.5) pipeline layout: encoder and tokenizer subfolder per text encoder."""


class SD3TextConditioner(CachedTextEncoder):
    """Texts → ``Condition(prompt_embeds [B, L_clip + L_t5, D_t5], pooled [B, P_L + P_G])``; frozen.

    Args:
        clip_l, clip_g: CLIP text encoders with projection (``text_embeds`` is the pooled output).
        t5: T5 encoder.
        tokenizer_l, tokenizer_g, tokenizer_t5: their tokenizers; the CLIP ones pad to their
            ``model_max_length``.
        t5_max_length: T5 token length (SD3.5: 256).
        cache_size: number of distinct texts kept (LRU). Each entry is one ``[L, D]`` + ``[P]`` pair
            on the encoders' device (real scale, bf16: ~2.7 MB).
    """

    def __init__(
        self,
        clip_l: CLIPTextModelWithProjection,
        clip_g: CLIPTextModelWithProjection,
        t5: T5EncoderModel,
        tokenizer_l,
        tokenizer_g,
        tokenizer_t5,
        t5_max_length: int = 256,
        cache_size: int = 256,
    ) -> None:
        super().__init__(cache_size)
        self.clip_l, self.clip_g, self.t5 = clip_l, clip_g, t5
        self.tokenizer_l, self.tokenizer_g, self.tokenizer_t5 = tokenizer_l, tokenizer_g, tokenizer_t5
        self.t5_max_length = t5_max_length
        clip_width = clip_l.config.hidden_size + clip_g.config.hidden_size
        if clip_width > t5.config.d_model:
            raise ValueError(f"CLIP hidden sizes sum to {clip_width}, wider than T5's d_model {t5.config.d_model}")
        for name, tok, enc in (("CLIP-L", tokenizer_l, clip_l), ("CLIP-G", tokenizer_g, clip_g)):
            if tok.model_max_length > enc.config.max_position_embeddings:
                raise ValueError(
                    f"{name} tokenizer pads to {tok.model_max_length} tokens but the encoder has only "
                    f"{enc.config.max_position_embeddings} positions"
                )
        self.requires_grad_(False)
        self.eval()

    @property
    def seq_len(self) -> int:
        """``L`` of ``prompt_embeds``: CLIP length + T5 length (SD3.5: 77 + 256 = 333)."""
        return self.tokenizer_l.model_max_length + self.t5_max_length

    @property
    def joint_dim(self) -> int:
        """Width of ``prompt_embeds`` (T5's ``d_model``; SD3.5: 4096)."""
        return self.t5.config.d_model

    @property
    def pooled_dim(self) -> int:
        """Width of ``pooled`` (SD3.5: 768 + 1280 = 2048)."""
        return self.clip_l.config.projection_dim + self.clip_g.config.projection_dim

    @property
    def device(self) -> torch.device:
        return self.clip_l.device

    def _clip(self, texts: list[str], tokenizer, encoder) -> tuple[torch.Tensor, torch.Tensor]:
        ids = tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(encoder.device)
        out = encoder(ids, output_hidden_states=True)
        return out.hidden_states[-2], out.text_embeds

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        h_l, p_l = self._clip(texts, self.tokenizer_l, self.clip_l)
        h_g, p_g = self._clip(texts, self.tokenizer_g, self.clip_g)
        ids = self.tokenizer_t5(
            texts, padding="max_length", max_length=self.t5_max_length, truncation=True,
            add_special_tokens=True, return_tensors="pt",
        ).input_ids.to(self.t5.device)
        h_t5 = self.t5(ids)[0]
        dtype = h_t5.dtype
        clip = torch.cat([h_l, h_g], dim=-1).to(dtype)
        clip = torch.nn.functional.pad(clip, (0, h_t5.shape[-1] - clip.shape[-1]))
        return torch.cat([clip, h_t5], dim=-2), torch.cat([p_l, p_g], dim=-1).to(dtype)


def build_sd3_text_conditioner(
    pretrained: str, t5_max_length: int = 256, cache_size: int = 256, torch_dtype: str | None = None
) -> SD3TextConditioner:
    """Load the three encoders and tokenizers from an SD3(.5) folder or hub id (pipeline layout:
    ``text_encoder{,_2,_3}``, ``tokenizer{,_2,_3}``)."""
    dtype = getattr(torch, torch_dtype) if torch_dtype is not None else None
    pretrained = pretrained_source(pretrained, "conditioner.pretrained")

    def tokenizer(key: str):
        return AutoTokenizer.from_pretrained(pretrained, subfolder=SUBFOLDERS[key][1])

    def encoder(cls, key: str):
        return cls.from_pretrained(pretrained, subfolder=SUBFOLDERS[key][0], dtype=dtype)

    return SD3TextConditioner(
        clip_l=encoder(CLIPTextModelWithProjection, "clip_l"),
        clip_g=encoder(CLIPTextModelWithProjection, "clip_g"),
        t5=encoder(T5EncoderModel, "t5"),
        tokenizer_l=tokenizer("clip_l"),
        tokenizer_g=tokenizer("clip_g"),
        tokenizer_t5=tokenizer("t5"),
        t5_max_length=t5_max_length,
        cache_size=cache_size,
    )
