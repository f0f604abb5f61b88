"""Saving and loading each pipeline component as a self-contained subfolder.

Hugging Face / diffusers models go through their own ``save_pretrained``; our small modules
through :mod:`rar.pipeline.module_io`; each component folder has a ``config.json`` with what its
constructor needs beyond weights. :data:`COMPONENTS` maps a component's class import path (as
written in ``model_index.json``) to its save and load functions — a visible table, no scanning.

Layouts::

    autoencoder/  config.json {"factor": 4}                                  (space-to-depth)
                  config.json {"scaling_factor", "shift_factor", ...} + vae/ (AutoencoderKL)
    uir/          config.json {"concat_lq": false} + transformer/ (SD3) or unet/ (SD1.5)
    lqa/          config.json {"image_space", "max_new_tokens", "max_image_size", "lora", "prefix_cache",
                  questions}
                  llm/ (LLaMA; LoRA merged in when lora="merged") + lora/ (peft adapter, lora="adapter")
                  tokenizer/, vision/ (CLIP, when the pixel path exists), abstractor/, image_adapter/,
                  vision_proj/ (config.json + model.safetensors each)
    text_adapter/ config.json + model.safetensors
    conditioner/  config.json {"t5_max_length", "cache_size"} + text_encoder{,_2,_3}/ tokenizer{,_2,_3}/
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel, UNet2DConditionModel
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import AutoTokenizer, CLIPVisionModel, LlamaForCausalLM

from rar.conditioning.sd3_text import (
    SUBFOLDERS,
    SD3TextConditioner,
    build_sd3_text_conditioner,
)
from rar.lqa.model import DepictQA
from rar.lqa.pixel_encoder import PixelEncoder
from rar.lqa.text_adapter import TextAdapter
from rar.pipeline.module_io import dtype_name, load_module, save_module
from rar.uir.autoencoders import KLAutoencoder, SpaceToDepthAutoencoder
from rar.uir.backbones import SD3UIR, SD15UIR

CONFIG_NAME = "config.json"
LORA_MODES = ("adapter", "merged")


def _write_config(folder: Path, config: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"component folder {folder} has no {CONFIG_NAME}")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- autoencoders
def save_space_to_depth(ae: SpaceToDepthAutoencoder, folder: Path, **_) -> None:
    _write_config(folder, {"factor": ae.stride})


def load_space_to_depth(folder: Path, dtype: torch.dtype | None = None) -> SpaceToDepthAutoencoder:
    return SpaceToDepthAutoencoder(**_read_config(folder))


def save_kl_autoencoder(ae: KLAutoencoder, folder: Path, **_) -> None:
    _write_config(folder, {"scaling_factor": ae.scaling_factor, "shift_factor": ae.shift_factor,
                           "sample_posterior": ae.sample_posterior})
    ae.vae.save_pretrained(folder / "vae")


def load_kl_autoencoder(folder: Path, dtype: torch.dtype | None = None) -> KLAutoencoder:
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype)
    return KLAutoencoder(vae, **_read_config(folder))


# ----------------------------------------------------------------------------- UIR backbones
def save_sd3_uir(uir: SD3UIR, folder: Path, **_) -> None:
    _write_config(folder, {"concat_lq": uir.concat_lq})
    uir.backbone.save_pretrained(folder / "transformer")


def load_sd3_uir(folder: Path, dtype: torch.dtype | None = None) -> SD3UIR:
    backbone = SD3Transformer2DModel.from_pretrained(folder / "transformer", torch_dtype=dtype)
    return SD3UIR(backbone, **_read_config(folder))


def save_sd15_uir(uir: SD15UIR, folder: Path, **_) -> None:
    _write_config(folder, {"concat_lq": uir.concat_lq})
    uir.backbone.save_pretrained(folder / "unet")


def load_sd15_uir(folder: Path, dtype: torch.dtype | None = None) -> SD15UIR:
    backbone = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
    return SD15UIR(backbone, **_read_config(folder))


# ----------------------------------------------------------------------------- LQA
def llm_state_without_lora(llm: nn.Module, merge: bool) -> dict[str, torch.Tensor]:
    """The plain LLaMA state dict of a (possibly peft-wrapped) LLM: LoRA tensors dropped and
    ``base_layer`` names restored; with ``merge`` each LoRA delta ``scale * B @ A`` is added to its
    base weight. The module itself is left unchanged."""
    base = llm.get_base_model() if isinstance(llm, PeftModel) else llm
    state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if ".lora_" not in k}
    if merge:
        for name, layer in base.named_modules():
            if isinstance(layer, LoraLayer):
                key = f"{name}.weight"
                deltas = [layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A]
                state[key] = state[key] + sum(d.to(state[key].dtype) for d in deltas)
    return state


def save_depictqa(lqa: DepictQA, folder: Path, lora: str = "adapter", **_) -> None:
    """Write the LQA; ``lora="adapter"`` keeps LoRA as a peft adapter next to the base weights
    (bit-exact reload), ``"merged"`` folds it into the LLaMA weights (plain transformers model)."""
    if lora not in LORA_MODES:
        raise ValueError(f"lora must be one of {LORA_MODES}, got {lora!r}")
    if lqa.tokenizer is None:
        raise ValueError("cannot save an LQA without a tokenizer (build it with build_depictqa)")
    has_lora = isinstance(lqa.llm, PeftModel)
    mode = lora if has_lora else "none"
    _write_config(folder, {
        "image_space": lqa.image_space, "max_new_tokens": lqa.max_new_tokens,
        "max_image_size": lqa.vision_encoder.max_size if lqa.vision_encoder is not None else None,
        "lora": mode, "prefix_cache": lqa.prefix_cache, "identify_question": lqa.identify_question,
        "compare_question": lqa.compare_question, "describe_question": lqa.describe_question,
    })
    lqa.base_llm.save_pretrained(folder / "llm", state_dict=llm_state_without_lora(lqa.llm, merge=mode == "merged"))
    if mode == "adapter":
        lqa.llm.save_pretrained(folder / "lora")
    lqa.tokenizer.save_pretrained(folder / "tokenizer")
    if lqa.vision_encoder is not None:
        lqa.vision_encoder.clip.save_pretrained(folder / "vision")
    save_module(lqa.abstractor, folder / "abstractor")
    save_module(lqa.vision_proj, folder / "vision_proj")
    if lqa.image_adapter is not None:
        save_module(lqa.image_adapter, folder / "image_adapter")


def load_depictqa(folder: Path, dtype: torch.dtype | None = None) -> DepictQA:
    """Read an LQA written by :func:`save_depictqa` (folders without ``prefix_cache`` get it on)."""
    config = _read_config(folder)
    llm = LlamaForCausalLM.from_pretrained(folder / "llm", dtype=dtype)
    if config["lora"] == "adapter":
        llm = PeftModel.from_pretrained(llm, folder / "lora")
    vision = None
    if (folder / "vision").is_dir():
        clip = CLIPVisionModel.from_pretrained(folder / "vision", dtype=dtype).requires_grad_(False)
        vision = PixelEncoder(clip, max_size=config["max_image_size"])
    lqa = DepictQA(
        llm=llm, tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        abstractor=load_module(folder / "abstractor", dtype), vision_proj=load_module(folder / "vision_proj", dtype),
        vision_encoder=vision,
        image_adapter=load_module(folder / "image_adapter", dtype) if (folder / "image_adapter").is_dir() else None,
        image_space=config["image_space"], max_new_tokens=config["max_new_tokens"],
        prefix_cache=config.get("prefix_cache", True),
    )
    lqa.identify_question = config["identify_question"]
    lqa.compare_question = config["compare_question"]
    lqa.describe_question = config["describe_question"]
    return lqa.eval()


# ----------------------------------------------------------------------------- adapters, text encoders
def save_text_adapter(adapter: TextAdapter, folder: Path, **_) -> None:
    save_module(adapter, folder)


def load_text_adapter(folder: Path, dtype: torch.dtype | None = None) -> TextAdapter:
    return load_module(folder, dtype)


def save_sd3_text(conditioner: SD3TextConditioner, folder: Path, **_) -> None:
    dtype = conditioner.t5.dtype
    _write_config(folder, {"t5_max_length": conditioner.t5_max_length, "cache_size": conditioner.cache_size,
                           "dtype": dtype_name(dtype)})
    parts = {"clip_l": (conditioner.clip_l, conditioner.tokenizer_l), "clip_g": (conditioner.clip_g, conditioner.tokenizer_g),
             "t5": (conditioner.t5, conditioner.tokenizer_t5)}
    for key, (encoder_dir, tokenizer_dir) in SUBFOLDERS.items():
        encoder, tokenizer = parts[key]
        encoder.save_pretrained(folder / encoder_dir)
        tokenizer.save_pretrained(folder / tokenizer_dir)


def load_sd3_text(folder: Path, dtype: torch.dtype | None = None) -> SD3TextConditioner:
    config = _read_config(folder)
    return build_sd3_text_conditioner(str(folder), t5_max_length=config["t5_max_length"],
                                      cache_size=config["cache_size"],
                                      torch_dtype=dtype_name(dtype) if dtype is not None else config["dtype"])


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class ComponentIO:
    """How one component class is written to and read from its subfolder."""

    save: Callable[..., None]
    load: Callable[[Path, torch.dtype | None], nn.Module]


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


COMPONENTS: dict[str, ComponentIO] = {
    _path(SpaceToDepthAutoencoder): ComponentIO(save_space_to_depth, load_space_to_depth),
    _path(KLAutoencoder): ComponentIO(save_kl_autoencoder, load_kl_autoencoder),
    _path(SD3UIR): ComponentIO(save_sd3_uir, load_sd3_uir),
    _path(SD15UIR): ComponentIO(save_sd15_uir, load_sd15_uir),
    _path(DepictQA): ComponentIO(save_depictqa, load_depictqa),
    _path(TextAdapter): ComponentIO(save_text_adapter, load_text_adapter),
    _path(SD3TextConditioner): ComponentIO(save_sd3_text, load_sd3_text),
}
"""Class import path → save/load functions of every component class a model folder can hold."""


def component_io(path: str) -> ComponentIO:
    if path not in COMPONENTS:
        raise ValueError(f"no save/load functions for component class {path!r}; known: {sorted(COMPONENTS)}")
    return COMPONENTS[path]


def save_component(module: nn.Module, folder: Path, **options) -> str:
    """Write ``module`` to ``folder``; returns its class import path (for ``model_index.json``)."""
    path = _path(type(module))
    component_io(path).save(module, folder, **options)
    return path


def load_component(path: str, folder: Path, dtype: torch.dtype | None = None) -> nn.Module:
    if not folder.is_dir():
        raise FileNotFoundError(f"component folder not found: {folder}")
    return component_io(path).load(folder, dtype)
