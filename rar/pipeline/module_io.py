"""Our own small modules as ``config.json`` (constructor kwargs) + ``model.safetensors``.

The abstractor, latent image adapter, projector and text adapter do not record their constructor
arguments, so :data:`KWARGS` recovers them from the module structure; :func:`save_module` then
rebuilds the module from those kwargs on the ``meta`` device and checks every tensor name and
shape against the original before writing, so a folder that would not load is never written.
:func:`realign` gives loaded weights their own aligned memory (pipelines call it on construction).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from rar.lqa.abstractor import Abstractor
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.text_adapter import TextAdapter
from rar.training.checkpoint import save_tensors

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


def _linear_kwargs(m: nn.Linear) -> dict:
    return dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)


KWARGS: dict[type[nn.Module], Callable[[nn.Module], dict]] = {
    Abstractor: _abstractor_kwargs,
    LatentImageAdapter: _image_adapter_kwargs,
    TextAdapter: _text_adapter_kwargs,
    nn.Linear: _linear_kwargs,
}
"""Module class → function recovering its constructor kwargs (the classes this file can save)."""

CLASSES: dict[str, type[nn.Module]] = {f"{c.__module__}.{c.__qualname__}": c for c in KWARGS}
"""Import path → class, for loading (a visible table, no scanning)."""


def class_path(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


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
    module.load_state_dict(load_file(str(weights_path)), strict=True)
    return module.to(dtype or parse_dtype(config.get("dtype", "float32"))).eval()
