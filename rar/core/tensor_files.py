"""Reading and writing safetensors files (model folders and training checkpoints).

safetensors reports a truncated or foreign file as ``SafetensorError: Error while deserializing
header: ...`` without the path; :func:`read_tensors` is the one reader, and its error names the file.
"""

from __future__ import annotations

import pathlib

import torch
from safetensors.torch import load_file, save_file


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


class TensorFileError(ValueError):
    """A weights file that is missing, truncated or not safetensors."""


def read_tensors(path: str | pathlib.Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of the safetensors file ``path``.

    Raises:
        TensorFileError: the file is missing or cannot be read as safetensors (message names it).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise TensorFileError(f"weights file not found: {path}")
    try:
        return load_file(str(path), device=device)
    except Exception as error:  # SafetensorError, OSError, struct errors: all mean "not a usable file"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TensorFileError(f"{path}: not a readable safetensors file ({reason})") from error
