"""Writing tensors to a safetensors file (model folders and training checkpoints)."""

from __future__ import annotations

import pathlib

import torch
from safetensors.torch import save_file


def save_tensors(state: dict[str, torch.Tensor], path: pathlib.Path) -> None:
    """Write ``state`` as safetensors, un-aliasing tensors that share storage (tied weights)."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(out, str(tmp))
    tmp.replace(path)
