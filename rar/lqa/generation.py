"""Batched greedy decoding from input embeddings with a KV cache.

One forward per generated token for the whole batch; finished rows keep decoding padding (masked
out) until every row has emitted ``eos`` or ``max_new_tokens`` is reached. The hidden state
recorded for a token is the last-layer (post-norm) state at the position where that token is
*input*, i.e. its contextual representation, so the answer's terminator is represented too.
Runs under the caller's grad mode: with gradients enabled the hidden states are differentiable
with respect to the prefix embeddings (through the cache); the argmax choices are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaForCausalLM


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


def greedy_decode(
    llm: LlamaForCausalLM,
    prefix_embeds: torch.Tensor,
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
) -> Decoded:
    """Decode greedily after ``prefix_embeds [B, L, D]`` (all rows the same length, no padding)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    embed = llm.get_input_embeddings()
    out = llm.model(inputs_embeds=prefix_embeds, use_cache=True)
    cache = out.past_key_values
    next_ids = llm.lm_head(out.last_hidden_state[:, -1].detach()).argmax(-1)
    finished = torch.zeros(prefix_embeds.shape[0], dtype=torch.bool, device=prefix_embeds.device)
    tokens, hidden, mask = [], [], []
    for _ in range(max_new_tokens):
        ids = torch.where(finished, torch.full_like(next_ids, pad_id), next_ids)
        tokens.append(ids)
        mask.append(~finished)
        finished = finished | (ids == eos_id)
        step_embeds = embed(ids)[:, None].to(prefix_embeds.dtype)
        out = llm.model(inputs_embeds=step_embeds, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        h = out.last_hidden_state[:, -1]
        hidden.append(h)
        if bool(finished.all()):
            break
        next_ids = llm.lm_head(h.detach()).argmax(-1)
    return Decoded(torch.stack(tokens, 1), torch.stack(hidden, 1), torch.stack(mask, 1))
