"""Greedy decoding over a static KV cache, with an optionally compiled one-token step.

:func:`rar.lqa.generation.greedy_decode` grows a ``DynamicCache`` by concatenation: every step
allocates new key/value tensors and the step's shapes change, so it cannot be captured as a CUDA
graph and, at batch 1, it is bound by kernel launches. :class:`StaticDecoder` runs the same greedy
loop over transformers' ``StaticCache`` (keys/values preallocated to ``prompt + max_new_tokens``
positions, written in place), so the one-token step has fixed shapes and fixed tensor addresses;
with ``compile_step=True`` that step goes through ``torch.compile`` (``mode="reduce-overhead"`` on
CUDA, i.e. CUDA graphs).

The decoded tokens and masks are those of :func:`greedy_decode` and the hidden states agree to
float round-off (attention then runs over the padded static length with masked positions instead
of the exact length; ``tests/test_lqa_static_decode.py`` pins both on the tiny LQA). The loop checks
whether every row has finished only every ``check_every`` tokens (one host sync each), then trims
the steps decoded after the last row finished, so the outputs have the same length as the dynamic
path's.

A prefix from :class:`rar.lqa.generation.PrefixKV` (a batch-expanded ``DynamicCache``) is copied
into the static cache before the prefill, so the shared-prompt cache and the static decode compose.
The static caches (one per batch size, length, dtype and device) are kept and reset between calls
so a compiled, graph-captured step sees the same buffers every time. Inference only: it raises
under ``torch.enable_grad``.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, LlamaForCausalLM, StaticCache

from rar.lqa.generation import Decoded, Step, greedy_loop

class StaticDecoder:
    """Greedy decoding of one LLaMA over reusable static caches.

    Args:
        compile_step: compile the one-token step (``torch.compile``, ``fullgraph=True``).
        mode: ``torch.compile`` mode; ``None`` picks ``"reduce-overhead"`` (CUDA graphs) on CUDA
            and the default mode elsewhere.
        backend: ``torch.compile`` backend (``"inductor"``; ``"eager"`` only traces, for tests).
        check_every: decode this many tokens between checks that every row has finished.
    """

    def __init__(self, compile_step: bool = False, mode: str | None = None, backend: str = "inductor",
                 check_every: int = 4) -> None:
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        self.compile_step = compile_step
        self.mode = mode
        self.backend = backend
        self.check_every = check_every
        self._caches: dict[tuple, StaticCache] = {}
        self._steps: dict[tuple, Step] = {}

    def clear(self) -> None:
        """Drop the kept caches and compiled steps (after the LLM's device, dtype or weights object changed)."""
        self._caches.clear()
        self._steps.clear()

    def _cache(self, llm: LlamaForCausalLM, batch: int, length: int, like: torch.Tensor) -> StaticCache:
        key = (id(llm), batch, length, like.dtype, like.device)
        cache = self._caches.get(key)
        if cache is None:
            cache = StaticCache(config=llm.config, max_cache_len=length)
            self._caches[key] = cache
        else:
            cache.reset()
        return cache

    def _step(self, llm: LlamaForCausalLM, cache: StaticCache, dtype: torch.dtype, key: tuple) -> Step:
        step = self._steps.get(key)
        if step is not None:
            return step
        embed = llm.get_input_embeddings()

        def step(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = llm.model(inputs_embeds=embed(ids)[:, None].to(dtype), past_key_values=cache, use_cache=True)
            h = out.last_hidden_state[:, -1]
            return h, llm.lm_head(h).argmax(-1)

        if self.compile_step:
            mode = self.mode or ("reduce-overhead" if key[-1].type == "cuda" else None)
            step = torch.compile(step, mode=mode, backend=self.backend, fullgraph=True)
        self._steps[key] = step
        return step

    def decode(
        self,
        llm: LlamaForCausalLM,
        prefix_embeds: torch.Tensor,
        eos_id: int,
        pad_id: int,
        max_new_tokens: int,
        past: DynamicCache | None = None,
    ) -> Decoded:
        """Greedy answer after ``prefix_embeds [B, L, D]`` (same contract as ``greedy_decode``)."""
        if torch.is_grad_enabled():
            raise RuntimeError("StaticDecoder is for inference: call it under torch.no_grad()")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        batch, length = prefix_embeds.shape[:2]
        held = past.get_seq_length() if past is not None else 0
        total = held + length + max_new_tokens
        cache = self._cache(llm, batch, total, prefix_embeds)
        if past is not None:  # the shared prefix's keys/values go first, in place
            for layer, static_layer in zip(past.layers, cache.layers, strict=True):
                static_layer.update(layer.keys, layer.values)
        out = llm.model(inputs_embeds=prefix_embeds, past_key_values=cache, use_cache=True)
        next_ids = llm.lm_head(out.last_hidden_state[:, -1]).argmax(-1)
        step = self._step(llm, cache, prefix_embeds.dtype,
                          (id(llm), batch, total, prefix_embeds.dtype, prefix_embeds.device))
        return greedy_loop(next_ids, step, eos_id, pad_id, max_new_tokens, self.check_every,
                           clone_hidden=self.compile_step)

