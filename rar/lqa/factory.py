"""Build the LQA from local folders (or hub ids): ``configs/lqa/*.yaml`` point here.

Real: ``vision_pretrained`` = a CLIP ViT-L/14 folder in Hugging Face layout
(``openai/clip-vit-large-patch14``), ``llm_pretrained`` = a Vicuna-7B-v1.5 folder (weights +
tokenizer). DepictQA's own trained parts (abstractor, projector, LoRA) come from its released
checkpoint through ``scripts/convert_depictqa.py`` and ``init_from``. Tiny: both folders are
written by :func:`rar.lqa.tiny.save_tiny_depictqa` and load through this same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from peft import LoraConfig, TaskType, get_peft_model
from torch import nn
from transformers import (
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
)

from rar.lqa.abstractor import Abstractor
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.model import DepictQA, ImageSpace
from rar.lqa.pixel_encoder import PixelEncoder
from rar.utils.paths import pretrained_source

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def assemble_depictqa(
    llm: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase | None,
    abstractor: Abstractor,
    clip: CLIPVisionModel | None = None,
    image_adapter: LatentImageAdapter | None = None,
    image_space: ImageSpace = "latent",
    lora_r: int | None = 16,
    lora_alpha: int = 16,
    lora_dropout: float = 0.1,
    lora_targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    max_image_size: int | None = None,
    max_new_tokens: int = 24,
    prefix_cache: bool = True,
) -> DepictQA:
    """Put built parts together: wrap the LLM with LoRA (``lora_r=None``: none), add the projector."""
    if clip is not None:
        clip.requires_grad_(False)
        if clip.config.hidden_size != abstractor.hidden_dim:
            raise ValueError(f"CLIP width {clip.config.hidden_size} != abstractor hidden_dim {abstractor.hidden_dim}")
    if lora_r is not None:
        config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora_r, lora_alpha=lora_alpha,
                            lora_dropout=lora_dropout, target_modules=list(lora_targets))
        llm = get_peft_model(llm, config)
    vision_proj = nn.Linear(abstractor.hidden_dim, llm.config.hidden_size)
    return DepictQA(
        llm=llm, tokenizer=tokenizer, abstractor=abstractor, vision_proj=vision_proj,
        vision_encoder=PixelEncoder(clip, max_size=max_image_size) if clip is not None else None,
        image_adapter=image_adapter, image_space=image_space, max_new_tokens=max_new_tokens,
        prefix_cache=prefix_cache,
    )


def build_depictqa(
    llm_pretrained: str,
    abstractor: Abstractor,
    vision_pretrained: str | None = None,
    image_adapter: LatentImageAdapter | None = None,
    image_space: ImageSpace = "latent",
    lora_r: int | None = 16,
    lora_alpha: int = 16,
    lora_dropout: float = 0.1,
    lora_targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    dtype: str = "float32",
    max_image_size: int | None = None,
    max_new_tokens: int = 24,
    prefix_cache: bool = True,
) -> DepictQA:
    """Load CLIP (if ``vision_pretrained``) and the LLM + tokenizer, then :func:`assemble_depictqa`.

    Args:
        llm_pretrained: folder or hub id of the LLaMA/Vicuna weights and tokenizer.
        abstractor: built :class:`Abstractor` (its ``hidden_dim`` must equal CLIP's width).
        vision_pretrained: folder or hub id of a ``CLIPVisionModel``; ``None`` = no pixel path.
        image_adapter: built latent path, or ``None`` for a pixel-only model.
        image_space: the path the assessment API reads (``"pixel"`` | ``"latent"``).
        lora_r, lora_alpha, lora_dropout, lora_targets: LoRA on the LLM (DepictQA: 16, 16, 0.1, q/k/v/o).
        dtype: storage dtype of the frozen pretrained backbones (``float32`` | ``bfloat16`` | ``float16``).
        max_image_size: longer-side limit of pixel-path inputs.
        max_new_tokens: decoding budget of ``assess``.
        prefix_cache: reuse the KV states of the shared prompt prefix in inference (:class:`DepictQA`).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    torch_dtype = _DTYPES[dtype]
    llm_pretrained = pretrained_source(llm_pretrained, "lqa.llm_pretrained")
    vision_pretrained = vision_pretrained and pretrained_source(vision_pretrained, "lqa.vision_pretrained")
    clip = CLIPVisionModel.from_pretrained(vision_pretrained, dtype=torch_dtype) if vision_pretrained else None
    llm = LlamaForCausalLM.from_pretrained(llm_pretrained, dtype=torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(llm_pretrained)
    if tokenizer.eos_token_id is None or tokenizer.bos_token_id is None:
        raise ValueError(
            f"the tokenizer in {llm_pretrained} needs bos and eos tokens (got {tokenizer.special_tokens_map})"
        )
    return assemble_depictqa(
        llm, tokenizer, abstractor, clip=clip, image_adapter=image_adapter, image_space=image_space,
        lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=lora_targets,
        max_image_size=max_image_size, max_new_tokens=max_new_tokens, prefix_cache=prefix_cache,
    )


def build_skeleton(
    llm_config: LlamaConfig,
    abstractor: Abstractor,
    clip_config: CLIPVisionConfig | None = None,
    image_adapter: LatentImageAdapter | None = None,
    image_space: ImageSpace = "latent",
    lora_r: int | None = 16,
    lora_alpha: int = 16,
    lora_dropout: float = 0.1,
    lora_targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    prefix_cache: bool = True,
) -> DepictQA:
    """A randomly initialised DepictQA from model configs, without tokenizer (for shape checks,
    parameter counts and checkpoint conversion; build it under ``torch.device("meta")`` at real size)."""
    clip = CLIPVisionModel(clip_config) if clip_config is not None else None
    return assemble_depictqa(
        LlamaForCausalLM(llm_config), None, abstractor, clip=clip, image_adapter=image_adapter,
        image_space=image_space, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        lora_targets=lora_targets, prefix_cache=prefix_cache,
    )
