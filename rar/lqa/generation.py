"""Running the LLM over prompt embeddings: batched greedy decoding and the shared-prefix KV cache.

:func:`greedy_decode` runs one forward per generated token for the whole batch; finished rows
keep decoding padding (masked out) until every row has emitted ``eos`` or ``max_new_tokens`` is
reached. The hidden state recorded for a token is the last-layer (post-norm) state at the position
where that token is *input*, i.e. its contextual representation, so the answer's terminator is
represented too. Runs under the caller's grad mode: with gradients enabled the hidden states are
differentiable with respect to the prompt embeddings (through the cache); the argmax choices are not.

:class:`PrefixKV` holds the keys/values of prompt prefixes every row of every call shares (in
DepictQA: BOS + system text + the text up to the first image slot). Each prefix is run once, at
batch 1, and :meth:`PrefixKV.past` hands out a cache whose tensors are batch-expanded *views* of
the stored ones; the LLM then runs only over the rest of the prompt, its positions continuing after
the prefix (``LlamaModel`` starts ``position_ids`` at the cache length). transformers'
``DynamicLayer`` concatenates new keys onto the past at every forward and never writes into the
past tensors, so the stored entries stay intact and the first forward makes the only copy.
The stored states assume frozen weights: entries are keyed by prefix ids, device and dtype, and
all are dropped when any LLM parameter was changed in place since they were computed
(``Tensor._version``: optimizer steps, ``load_state_dict``, LoRA merges) or on :meth:`clear`
(which :class:`rar.lqa.model.DepictQA` calls on ``train(True)`` and ``.to()``). Changes that
modify no parameter in place (switching or disabling a peft adapter, assigning new parameter
objects) are not seen: clear it after those.
Use it only without gradients: the stored tensors carry no graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache, LlamaForCausalLM
from transformers.cache_utils import DynamicLayer


@dataclass
class Decoded:
    """Greedy answer of a batch.

    Attributes:
        tokens: ``[B, T]`` long; generated ids, ``pad_id`` after a row's ``eos``.
        hidden: ``[B, T, D]`` float; last-layer state of each generated token.
        mask: ``[B, T]`` bool; True for real answer tokens (up to and including ``eos``).
    """

    tokens: torch.Tensor
    hidden: torch.Tensor
    mask: torch.Tensor


@dataclass
class LLMPrompt:
    """A batch of equal-length prompts, possibly split after a cached prefix.

    Attributes:
        embeds: ``[B, L', D]`` input embeddings still to run (the whole prompt when ``past`` is None).
        past: KV cache of the first ``L - L'`` prompt positions at batch ``B``, or None.
    """

    embeds: torch.Tensor
    past: DynamicCache | None = None

    @property
    def past_length(self) -> int:
        return self.past.get_seq_length() if self.past is not None else 0


def greedy_decode(
    llm: LlamaForCausalLM,
    prefix_embeds: torch.Tensor,
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
    past: DynamicCache | None = None,
) -> Decoded:
    """Decode greedily after ``prefix_embeds [B, L, D]`` (all rows the same length, no padding),
    which follow the positions already held by ``past`` (a batch-``B`` cache; it is extended)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    embed = llm.get_input_embeddings()
    out = llm.model(inputs_embeds=prefix_embeds, past_key_values=past, use_cache=True)
    cache = out.past_key_values
    first_ids = llm.lm_head(out.last_hidden_state[:, -1].detach()).argmax(-1)

    def step(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = llm.model(inputs_embeds=embed(ids)[:, None].to(prefix_embeds.dtype), past_key_values=cache,
                      use_cache=True).last_hidden_state[:, -1]
        return h, llm.lm_head(h.detach()).argmax(-1)

    return greedy_loop(first_ids, step, eos_id, pad_id, max_new_tokens)


Step = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``step(ids [B]) -> (hidden [B, D] of ids as input, next ids [B])``: one token through the LLM."""


def greedy_loop(first_ids: torch.Tensor, step: Step, eos_id: int, pad_id: int, max_new_tokens: int,
                check_every: int = 1, clone_hidden: bool = False) -> Decoded:
    """The greedy loop shared by the dynamic- and static-cache decoders: feed ``first_ids``, then
    each step's argmax; a row that emitted ``eos`` gets ``pad_id`` (masked) from then on. Whether
    every row has finished is checked every ``check_every`` tokens (a host sync each); the output
    is trimmed to the step where the last row finished, so it does not depend on ``check_every``.
    ``clone_hidden``: copy each step's hidden state (a graph-captured step reuses its output buffer)."""
    finished = torch.zeros(first_ids.shape[0], dtype=torch.bool, device=first_ids.device)
    next_ids = first_ids
    tokens, hidden, mask = [], [], []
    for i in range(max_new_tokens):
        ids = torch.where(finished, torch.full_like(next_ids, pad_id), next_ids)
        tokens.append(ids)
        mask.append(~finished)
        finished = finished | (ids == eos_id)
        h, next_ids = step(ids)
        hidden.append(h.clone() if clone_hidden else h)
        if (i + 1) % check_every == 0 and bool(finished.all()):
            break
    tokens_t, hidden_t, mask_t = torch.stack(tokens, 1), torch.stack(hidden, 1), torch.stack(mask, 1)
    done = ((tokens_t == eos_id) | ~mask_t).all(0).nonzero()  # steps at which every row had finished
    steps = int(done[0, 0]) + 1 if done.numel() else tokens_t.shape[1]
    return Decoded(tokens_t[:, :steps], hidden_t[:, :steps], mask_t[:, :steps])


class PrefixKV:
    """Keys/values of shared prompt prefixes, computed once at batch 1 and expanded per call.

    Entries: ``(prefix ids, device, dtype)`` → one ``(keys, values)`` pair per layer, each
    ``[1, H_kv, P, d]``. A handful at most (one per task's text before its first image).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple[tuple[torch.Tensor, torch.Tensor], ...]] = {}
        self._version: int | None = None
        self._llm: LlamaForCausalLM | None = None
        self._params: list[torch.Tensor] = []  # the LLM's parameters, listed once (walking the modules is slow)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every stored prefix (call when the LLM's weights, device or dtype may have changed)."""
        self._entries.clear()
        self._version, self._llm, self._params = None, None, []

    def _weights_version(self, llm: LlamaForCausalLM) -> int:
        """Sum of the parameters' in-place modification counters (it grows with every change)."""
        if llm is not self._llm:
            self._llm, self._params = llm, list(llm.parameters())
        return sum(p._version for p in self._params)

    def past(self, llm: LlamaForCausalLM, ids: tuple[int, ...], embeds: torch.Tensor, batch: int) -> DynamicCache:
        """A batch-``batch`` cache holding the prefix whose token ids are ``ids`` and whose input
        embeddings are ``embeds [1, P, D]`` (run through ``llm`` only when not stored yet)."""
        if torch.is_grad_enabled():
            raise RuntimeError("the prefix KV cache holds no graph: use it under torch.no_grad()")
        if embeds.ndim != 3 or embeds.shape[:2] != (1, len(ids)):
            raise ValueError(f"expected prefix embeds [1, {len(ids)}, D], got {tuple(embeds.shape)}")
        version = self._weights_version(llm)
        if version != self._version:  # weights changed in place since the entries were computed
            self._entries.clear()
            self._version = version
        key = (ids, embeds.device, embeds.dtype)
        if key not in self._entries:
            cache = llm.model(inputs_embeds=embeds, use_cache=True).past_key_values
            self._entries[key] = tuple((layer.keys, layer.values) for layer in cache.layers)
        past = DynamicCache()
        for keys, values in self._entries[key]:
            layer = DynamicLayer()
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
            past.layers.append(layer)
        return past
