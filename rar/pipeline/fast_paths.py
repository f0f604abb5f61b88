"""Inference fast paths: switches that change speed, not the method.

* ``autocast``: run the pipeline under ``torch.autocast`` in ``bfloat16`` / ``float16`` (weights
  stay in their dtype; ``from_pretrained(dtype=...)`` casts the weights themselves).
* ``attention``: which PyTorch scaled-dot-product-attention kernels may run. Both the diffusers
  MMDiT (``JointAttnProcessor2_0``) and the transformers LLaMA (``attn_implementation="sdpa"``)
  call ``F.scaled_dot_product_attention``; ``auto`` lets PyTorch pick (flash / memory-efficient /
  cuDNN where the inputs allow), ``math`` forces the unfused reference kernel (the "before"
  of the SDPA measurement).
* ``compile_uir``: ``torch.compile`` the MMDiT's forward in place (``nn.Module.compile``; state
  dict names unchanged). Shapes that change between calls (a shrinking active batch) recompile
  once per new shape, then hit the cache.
* ``merge_lora``: fold the LQA's LoRA into the LLM weights for inference (peft
  ``merge_adapter``; undone when switched off): no LoRA branches per projection while decoding.
  Outputs change only by the rounding of the merged weights.
* ``prefix_cache``: the LQA's KV-cache reuse of the shared prompt prefix
  (:class:`rar.lqa.generation.PrefixKV`); ``None`` keeps the LQA's own setting (its
  ``lqa/config.json``, on by default).
* ``static_decode``: the LQA's greedy answers over a preallocated static KV cache
  (:class:`rar.lqa.static_decode.StaticDecoder`; same tokens); with ``compile_decode`` its
  one-token step is compiled (CUDA graphs on a GPU), the batch-1 decode's launch overhead gone.

Measured before/after by ``scripts/bench.py`` (``docs/performance.md``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ATTENTION_BACKENDS: dict[str, list[SDPBackend] | None] = {
    "auto": None,
    "flash": [SDPBackend.FLASH_ATTENTION],
    "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    "cudnn": [SDPBackend.CUDNN_ATTENTION],
    "math": [SDPBackend.MATH],
}
AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class FastPaths:
    """Speed switches of an inference pipeline (see the module docstring)."""

    autocast: str | None = None
    attention: str = "auto"
    compile_uir: bool = False
    merge_lora: bool = False
    prefix_cache: bool | None = None
    static_decode: bool = False
    compile_decode: bool = False

    def __post_init__(self) -> None:
        if self.compile_decode and not self.static_decode:
            raise ValueError("compile_decode needs static_decode=true (the compiled step runs on the static cache)")
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be null or one of {sorted(AUTOCAST_DTYPES)}, got {self.autocast!r}")
        if self.attention not in ATTENTION_BACKENDS:
            raise ValueError(f"attention must be one of {sorted(ATTENTION_BACKENDS)}, got {self.attention!r}")

    @classmethod
    def of(cls, value: FastPaths | Mapping | None) -> FastPaths:
        """``value`` as :class:`FastPaths` (a mapping of its fields, or None for the defaults);
        unknown names are an error listing the known ones."""
        if value is None or isinstance(value, FastPaths):
            return value or cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise TypeError(f"unknown fast-path switches {unknown}; known: {sorted(known)}")
        return cls(**value)

    @contextlib.contextmanager
    def context(self, device: torch.device) -> Iterator[None]:
        """Autocast (if set) and the allowed attention kernels for the body."""
        with contextlib.ExitStack() as stack:
            if self.autocast is not None:
                stack.enter_context(torch.autocast(device.type, dtype=AUTOCAST_DTYPES[self.autocast]))
            backends = ATTENTION_BACKENDS[self.attention]
            if backends is not None:
                stack.enter_context(sdpa_kernel(backends))
            yield

