"""Randomly initialised models of the architecture a config would load (for benchmarks).

Real-scale configs point at weights (``lmsys/vicuna-7b-v1.5``, ``stabilityai/stable-diffusion-3.5-*``)
that a benchmark does not need: speed and memory depend on the architecture only. The builders
here take the *same arguments* as the loaders they stand in for and build that architecture with
random weights, so ``scripts/bench.py`` swaps a config node's ``_target_`` and keeps the rest:

* :func:`random_kl_autoencoder` ↔ :func:`rar.uir.autoencoders.build_kl_autoencoder`
* :func:`random_depictqa` ↔ :func:`rar.lqa.factory.build_depictqa`
* the UIR builders already build a random model from their preset when ``pretrained`` is None.

A weights reference that is not in :data:`ARCHITECTURES` but is a local folder (e.g. the tiny
models of ``scripts/make_tiny_models.py``) is loaded as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from rar.lqa.abstractor import Abstractor
from rar.lqa.architectures import clip_vit_l14_config, vicuna_7b_v15_config
from rar.lqa.factory import assemble_depictqa, build_depictqa
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.model import DepictQA, ImageSpace
from rar.lqa.tiny import degradation_phrases, template_corpus, train_word_tokenizer
from rar.pipeline.model_folder import parse_dtype
from rar.uir.autoencoders import KLAutoencoder, build_kl_autoencoder

SD35_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16, "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2, "use_quant_conv": False, "use_post_quant_conv": False,
}
"""``AutoencoderKL`` arguments of the SD3.5 VAE (Medium and Large share it)."""

ARCHITECTURES: dict[str, Callable[[], object]] = {
    "lmsys/vicuna-7b-v1.5": vicuna_7b_v15_config,
    "openai/clip-vit-large-patch14": clip_vit_l14_config,
    "stabilityai/stable-diffusion-3.5-medium": lambda: SD35_VAE,
    "stabilityai/stable-diffusion-3.5-large": lambda: SD35_VAE,
}
"""Weights reference (hub id) → its architecture (a transformers config or diffusers arguments)."""

def _architecture(reference: str, kind: str):
    if reference not in ARCHITECTURES:
        raise ValueError(f"no known {kind} architecture for {reference!r} (known: {sorted(ARCHITECTURES)}); "
                         f"a local folder is loaded instead when it exists")
    return ARCHITECTURES[reference]()


def _local(reference: str | None) -> bool:
    return reference is not None and reference not in ARCHITECTURES and Path(reference).is_dir()


def random_kl_autoencoder(
    pretrained: str,
    subfolder: str | None = "vae",
    scaling_factor: float | None = None,
    shift_factor: float | None = None,
    sample_posterior: bool = False,
    torch_dtype: str | None = None,
) -> KLAutoencoder:
    """The VAE of ``pretrained`` with random weights (arguments as ``build_kl_autoencoder``)."""
    if _local(pretrained):
        return build_kl_autoencoder(pretrained, subfolder=subfolder, scaling_factor=scaling_factor,
                                    shift_factor=shift_factor, sample_posterior=sample_posterior,
                                    torch_dtype=torch_dtype)
    vae = AutoencoderKL(**_architecture(pretrained, "VAE"))
    if torch_dtype is not None:
        vae.to(parse_dtype(torch_dtype))
    return KLAutoencoder(vae, scaling_factor if scaling_factor is not None else 1.0, shift_factor or 0.0,
                         sample_posterior)


def random_depictqa(
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
    """DepictQA with the LLM (and CLIP) architectures of ``llm_pretrained`` (``vision_pretrained``)
    and random weights, built directly on the default device in ``dtype`` (arguments as
    ``build_depictqa``). The tokenizer is the tiny word-level one (its ids fit any LLaMA
    vocabulary); random weights never emit ``eos``, so every answer decodes ``max_new_tokens``."""
    if _local(llm_pretrained):
        return build_depictqa(
            llm_pretrained, abstractor, vision_pretrained=vision_pretrained, image_adapter=image_adapter,
            image_space=image_space, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            lora_targets=lora_targets, dtype=dtype, max_image_size=max_image_size, max_new_tokens=max_new_tokens,
            prefix_cache=prefix_cache)
    llm_config: LlamaConfig = _architecture(llm_pretrained, "LLM")
    tokenizer = train_word_tokenizer(template_corpus(degradation_phrases()))
    if len(tokenizer) > llm_config.vocab_size:
        raise ValueError(f"the benchmark tokenizer has {len(tokenizer)} ids, more than {llm_pretrained}'s "
                         f"vocabulary of {llm_config.vocab_size}")
    llm_config.bos_token_id, llm_config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    previous = torch.get_default_dtype()
    torch.set_default_dtype(parse_dtype(dtype))  # build in the storage dtype: no fp32 copy of 7B weights
    try:
        llm = LlamaForCausalLM(llm_config)
        clip = None
        if vision_pretrained is not None:
            vision: CLIPVisionConfig = _architecture(vision_pretrained, "vision")
            clip = CLIPVisionModel(vision)
    finally:
        torch.set_default_dtype(previous)
    return assemble_depictqa(
        llm, tokenizer, abstractor, clip=clip, image_adapter=image_adapter, image_space=image_space,
        lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=lora_targets,
        max_image_size=max_image_size, max_new_tokens=max_new_tokens, prefix_cache=prefix_cache,
    )
