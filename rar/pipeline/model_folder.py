"""The model folder and the (de)serialisation of every component in it, in one module.

A model folder is ``model_index.json`` + one subfolder per component + ``rar_config.json`` (the
loop settings). ``model_index.json`` names every component by the import path of its class
(diffusers style)::

    {"_class_name": "rar.pipeline.RARPipeline", "_rar_version": "0.1.0",
     "autoencoder": ["rar.uir.autoencoders.SpaceToDepthAutoencoder", "autoencoder"],
     "uir": ["rar.uir.backbones.SD3UIR", "uir"], "lqa": ["rar.lqa.model.DepictQA", "lqa"],
     "text_adapter": ["rar.lqa.text_adapter.TextAdapter", "text_adapter"],
     "conditioner": null}

A null entry is a component the folder does not hold (the SD3.5 text encoders are only needed by
the naive baseline). A folder conditions its UIR through the text adapter (RAR) or the text
encoders: a UIR trained with ``condition=text`` has no text adapter, and its folder (``text_adapter:
null``, ``conditioner`` present) runs with the naive and text-latent pipelines only. Hugging Face / diffusers models go through their own ``save_pretrained``;
our small modules (abstractor, latent image adapter, projector, text adapter) through
:func:`save_module` (``config.json`` with constructor kwargs + ``model.safetensors``). Component
layouts::

    autoencoder/  config.json {"factor": 4}                                  (space-to-depth)
                  config.json {"scaling_factor", "shift_factor", ...} + vae/ (AutoencoderKL)
    uir/          config.json {"concat_lq": false} + transformer/ (SD3) or unet/ (SD1.5)
                  config.json {"schedule": {...}} + unet/ (SD1.5 diffusion restorer)
    lqa/          config.json {"image_space", "max_new_tokens", "max_image_size", "lora", "prefix_cache",
                  questions}
                  llm/ (LLaMA; LoRA merged in when lora="merged") + lora/ (peft adapter, lora="adapter")
                  tokenizer/, vision/ (CLIP, when the pixel path exists), abstractor/, image_adapter/,
                  vision_proj/ (config.json + model.safetensors each)
    text_adapter/ config.json + model.safetensors
    conditioner/  config.json {"t5_max_length", "cache_size"} + text_encoder{,_2,_3}/ tokenizer{,_2,_3}/
                  config.json {"cache_size"} + text_encoder/ tokenizer/ (SD1.5's CLIP-L)

Our small modules do not record their constructor arguments, so :data:`KWARGS` recovers them from
the module structure; :func:`save_module` rebuilds the module from those kwargs on the ``meta``
device and checks every tensor name and shape against the original before writing, so a folder
that would not load is never written. :func:`realign` gives loaded weights their own aligned
memory (pipelines call it on construction).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel, UNet2DConditionModel
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import AutoTokenizer, CLIPVisionModel, LlamaForCausalLM

import rar
from rar.conditioning.clip_text import CLIPTextConditioner, build_clip_text_conditioner
from rar.conditioning.sd3_text import (
    SUBFOLDERS,
    SD3TextConditioner,
    build_sd3_text_conditioner,
)
from rar.core.tensor_files import read_tensors, save_tensors
from rar.lqa.abstractor import Abstractor
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.model import DepictQA
from rar.lqa.pixel_encoder import PixelEncoder
from rar.lqa.text_adapter import TextAdapter, ZeroTextAdapter
from rar.pipeline.config import LoopConfig
from rar.uir.autoencoders import KLAutoencoder, SpaceToDepthAutoencoder
from rar.uir.backbones import SD3UIR, SD15UIR
from rar.uir.diffusion import DiffusionUIR
from rar.utils.paths import confined

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _abstractor_kwargs(m: Abstractor) -> dict:
    layer = m.abstractor.layers[0]
    return dict(hidden_dim=m.hidden_dim, num_queries=m.num_queries, num_layers=len(m.abstractor.layers),
                nhead=layer.self_attn.num_heads, dim_feedforward=layer.linear1.out_features, dropout=layer.dropout.p)


def _image_adapter_kwargs(m: LatentImageAdapter) -> dict:
    layer = m.encoder.layers[0]
    return dict(latent_channels=m.latent_channels, out_dim=m.proj_out.out_features, num_queries=m.num_queries,
                width=m.queries.shape[1], patch_size=m.patch_size, encoder_layers=len(m.encoder.layers),
                decoder_layers=len(m.decoder.layers), nhead=layer.self_attn.num_heads,
                dim_feedforward=layer.linear1.out_features, dropout=layer.dropout.p)


def _text_adapter_kwargs(m: TextAdapter) -> dict:
    layer = m.decoder.layers[0]
    return dict(llm_dim=m.llm_dim, seq_len=m.queries.shape[0], joint_dim=m.proj_out[-1].out_features,
                pooled_dim=m.pooled_head[-1].out_features, width=m.queries.shape[1], num_layers=len(m.decoder.layers),
                nhead=layer.self_attn.num_heads, dim_feedforward=layer.linear1.out_features, dropout=layer.dropout.p)


def _zero_text_adapter_kwargs(m: ZeroTextAdapter) -> dict:
    return dict(llm_dim=m.llm_dim, seq_len=m.seq_len, joint_dim=m.joint_dim, pooled_dim=m.pooled_dim)


def _linear_kwargs(m: nn.Linear) -> dict:
    return dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)


KWARGS: dict[type[nn.Module], Callable[[nn.Module], dict]] = {
    Abstractor: _abstractor_kwargs,
    LatentImageAdapter: _image_adapter_kwargs,
    TextAdapter: _text_adapter_kwargs,
    ZeroTextAdapter: _zero_text_adapter_kwargs,
    nn.Linear: _linear_kwargs,
}
"""Module class → function recovering its constructor kwargs (the classes this file can save)."""

def _path(cls: type) -> str:
    """A class's import path, as ``model_index.json`` and ``config.json`` name it."""
    return f"{cls.__module__}.{cls.__qualname__}"


CLASSES: dict[str, type[nn.Module]] = {_path(c): c for c in KWARGS}
"""Import path → class, for loading (a visible table, no scanning)."""


def class_path(module: nn.Module) -> str:
    return _path(type(module))


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's first floating-point parameter (float32 if it has none)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """``"bfloat16"`` / ``torch.bfloat16`` / None → torch dtype or None."""
    if name is None or isinstance(name, torch.dtype):
        return name
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must name a floating-point torch dtype (float32, bfloat16, float16), got {name!r}")
    return dtype


def realign(module: nn.Module, alignment: int = 64) -> nn.Module:
    """Give every CPU tensor of ``module`` whose data is not ``alignment``-byte aligned its own copy.

    diffusers/transformers may leave loaded weights as views into the file buffer at arbitrary
    offsets; CPU matmul kernels take different (numerically different) paths on misaligned
    data, so without this a reloaded model is not bit-identical to the one that was saved.
    """
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.device.type == "cpu" and tensor.data_ptr() % alignment:
                tensor.data = tensor.data.clone()
    return module


def save_module(module: nn.Module, folder: str | Path) -> None:
    """Write ``folder/config.json`` (class, kwargs, dtype) and ``folder/model.safetensors``."""
    cls = type(module)
    if cls not in KWARGS:
        raise TypeError(f"cannot save a {class_path(module)}; module_io knows {sorted(CLASSES)}")
    kwargs = KWARGS[cls](module)
    with torch.device("meta"):
        rebuilt = cls(**kwargs)
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    again = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if own != again:
        diff = sorted(set(own.items()) ^ set(again.items()))[:5]
        raise ValueError(f"could not recover the constructor arguments of {class_path(module)} ({kwargs}); "
                         f"rebuilt tensors differ: {diff}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"_class": class_path(module), "kwargs": kwargs, "dtype": dtype_name(module_dtype(module))}
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    save_tensors(module.state_dict(), folder / WEIGHTS_NAME)


def load_module(folder: str | Path, dtype: torch.dtype | None = None) -> nn.Module:
    """Rebuild a module written by :func:`save_module` (in ``dtype``, default: the saved one)."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"module folder {folder} lacks {path.name}")
    config = json.loads(config_path.read_text())
    name = config.get("_class")
    if name not in CLASSES:
        raise ValueError(f"{config_path}: unknown module class {name!r}; expected one of {sorted(CLASSES)}")
    module = CLASSES[name](**config["kwargs"])
    module.load_state_dict(read_tensors(weights_path), strict=True)
    return module.to(dtype or parse_dtype(config.get("dtype", "float32"))).eval()


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


def save_diffusion_uir(uir: DiffusionUIR, folder: Path, **_) -> None:
    _write_config(folder, {"schedule": uir.schedule.as_dict()})
    uir.backbone.save_pretrained(folder / "unet")


def load_diffusion_uir(folder: Path, dtype: torch.dtype | None = None) -> DiffusionUIR:
    backbone = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
    return DiffusionUIR(backbone, **_read_config(folder))


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


def save_clip_text(conditioner: CLIPTextConditioner, folder: Path, **_) -> None:
    _write_config(folder, {"cache_size": conditioner.cache_size, "dtype": dtype_name(conditioner.encoder.dtype)})
    conditioner.encoder.save_pretrained(folder / "text_encoder")
    conditioner.tokenizer.save_pretrained(folder / "tokenizer")


def load_clip_text(folder: Path, dtype: torch.dtype | None = None) -> CLIPTextConditioner:
    config = _read_config(folder)
    return build_clip_text_conditioner(str(folder), cache_size=config["cache_size"],
                                       torch_dtype=dtype_name(dtype) if dtype is not None else config["dtype"])


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class ComponentIO:
    """How one component class is written to and read from its subfolder."""

    save: Callable[..., None]
    load: Callable[[Path, torch.dtype | None], nn.Module]


COMPONENTS: dict[str, ComponentIO] = {
    _path(SpaceToDepthAutoencoder): ComponentIO(save_space_to_depth, load_space_to_depth),
    _path(KLAutoencoder): ComponentIO(save_kl_autoencoder, load_kl_autoencoder),
    _path(SD3UIR): ComponentIO(save_sd3_uir, load_sd3_uir),
    _path(SD15UIR): ComponentIO(save_sd15_uir, load_sd15_uir),
    _path(DiffusionUIR): ComponentIO(save_diffusion_uir, load_diffusion_uir),
    _path(DepictQA): ComponentIO(save_depictqa, load_depictqa),
    _path(TextAdapter): ComponentIO(save_text_adapter, load_text_adapter),
    _path(ZeroTextAdapter): ComponentIO(save_text_adapter, load_text_adapter),
    _path(SD3TextConditioner): ComponentIO(save_sd3_text, load_sd3_text),
    _path(CLIPTextConditioner): ComponentIO(save_clip_text, load_clip_text),
}
"""Class import path → save/load functions of every component class a model folder can hold."""


def component_io(path: str) -> ComponentIO:
    if path not in COMPONENTS:
        raise ValueError(f"no save/load functions for component class {path!r}; known: {sorted(COMPONENTS)}")
    return COMPONENTS[path]


def save_component(module: nn.Module, folder: Path, **options) -> str:
    """Write ``module`` to ``folder``; returns its class import path (for ``model_index.json``)."""
    path = class_path(module)
    component_io(path).save(module, folder, **options)
    return path


def load_component(path: str, folder: Path, dtype: torch.dtype | None = None) -> nn.Module:
    if not folder.is_dir():
        raise FileNotFoundError(f"component folder not found: {folder}")
    return component_io(path).load(folder, dtype)


# ----------------------------------------------------------------------------- the folder
INDEX_NAME = "model_index.json"
LOOP_CONFIG_NAME = "rar_config.json"
PIPELINE_CLASS = "rar.pipeline.RARPipeline"
REQUIRED = ("autoencoder", "uir", "lqa")
OPTIONAL = ("text_adapter", "conditioner")
CONDITIONING = ("text_adapter", "conditioner")
"""A folder holds at least one of these: how the LQA's assessment reaches the UIR."""


@dataclass
class ModelFolder:
    """What a model folder holds once loaded.

    Attributes:
        components: name → built module for every non-null entry of ``model_index.json``.
        config: the loop settings of ``rar_config.json``.
    """

    components: dict[str, nn.Module]
    config: LoopConfig


def write_model_folder(
    path: str | Path, components: dict[str, nn.Module | None], config: LoopConfig, overwrite: bool = False,
    source: dict | None = None, **options,
) -> Path:
    """Write ``components`` (``None`` entries recorded as absent) and ``config`` to ``path``.

    ``source`` (e.g. the training run it came from) is recorded as ``_source`` in the index;
    ``options`` go to the component writers (e.g. ``lora="merged"`` for the LQA). The folder is
    written next to its final place and moved there at the end, so a failed save leaves nothing
    half-written; an existing folder is replaced only with ``overwrite``.
    """
    path = Path(path)
    missing = [name for name in REQUIRED if components.get(name) is None]
    if missing:
        raise ValueError(f"a model folder needs components {list(REQUIRED)}; missing {missing}")
    if all(components.get(name) is None for name in CONDITIONING):
        raise ValueError(f"a model folder needs one of {list(CONDITIONING)} to condition its UIR; got neither")
    unknown = sorted(set(components) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"unknown components {unknown}; a model folder holds {list(REQUIRED + OPTIONAL)}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    index: dict[str, object] = {"_class_name": PIPELINE_CLASS, "_rar_version": rar.__version__}
    if source is not None:
        index["_source"] = source
    for name in REQUIRED + OPTIONAL:
        module = components.get(name)
        index[name] = None if module is None else [save_component(module, tmp / name, **options), name]
    (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    config.save(tmp / LOOP_CONFIG_NAME)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def read_model_folder(
    path: str | Path, dtype: torch.dtype | None = None, skip: tuple[str, ...] = ()
) -> ModelFolder:
    """Build every component listed in ``path/model_index.json`` except those in ``skip``."""
    path = Path(path)
    index_path = path / INDEX_NAME
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a RAR model folder (no {INDEX_NAME}); write one with scripts/export_pipeline.py "
            "or RARPipeline.save_pretrained"
        )
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{index_path}: not valid JSON ({error})") from error
    missing = [name for name in REQUIRED if not index.get(name)]
    if missing:
        raise ValueError(f"{index_path} lacks required components {missing}")
    components = {}
    for name in REQUIRED + OPTIONAL:
        entry = index.get(name)
        if entry is None or name in skip:
            continue
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)):
            raise ValueError(f"{index_path}: component {name!r} must be [class import path, subfolder], got {entry!r}")
        class_path, subfolder = entry
        folder = confined(path, subfolder, index_path, f"component {name!r}")
        try:
            components[name] = load_component(class_path, folder, dtype)
        except Exception as error:  # corrupt or foreign files surface as many error types
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(f"{folder}: cannot load component {name!r} ({class_path}): {reason}") from error
    return ModelFolder(components, LoopConfig.load(path / LOOP_CONFIG_NAME))
