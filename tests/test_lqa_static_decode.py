"""Static-cache greedy decoding: the same tokens as the dynamic-cache loop, a fixed-shape step."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_latent_lqa

from rar.lqa.generation import greedy_decode
from rar.lqa.static_decode import StaticDecoder


@pytest.fixture
def lqa(tiny_dir):
    return tiny_latent_lqa(tiny_dir, max_new_tokens=10)


def _assess_both(lqa, z, decoder):
    with torch.no_grad():
        lqa.static_decoder = None
        dynamic = lqa.assess(z)
        lqa.static_decoder = decoder
        static = lqa.assess(z)
    return dynamic, static


@pytest.mark.parametrize(("batch", "prefix_cache", "check_every"), [(1, True, 4), (3, True, 1), (3, False, 3)])
def test_static_answers_equal_dynamic(lqa, batch, prefix_cache, check_every):
    lqa.prefix_cache = prefix_cache
    z = torch.randn(batch, 48, 8, 8, generator=torch.Generator().manual_seed(batch))
    dynamic, static = _assess_both(lqa, z, StaticDecoder(check_every=check_every))
    assert torch.equal(static.tokens, dynamic.tokens)
    assert static.text == dynamic.text
    assert torch.equal(static.mask, dynamic.mask)
    torch.testing.assert_close(static.hidden, dynamic.hidden, atol=1e-5, rtol=1e-5)


def test_early_eos_rows_are_trimmed_like_the_dynamic_loop(lqa):
    """Force an eos after a few tokens: the static loop decodes past it (it checks every 4 tokens)
    and must trim back to the dynamic loop's length."""
    llm = lqa.base_llm
    z = torch.randn(2, 48, 8, 8, generator=torch.Generator().manual_seed(5))
    _, eos, pad = lqa._ids()
    with torch.no_grad():
        prompt = lqa.llm_prompt(lqa_layout(), [z])
        first = greedy_decode(llm, prompt.embeds, eos, pad, 12, past=prompt.past)
        # pretend a token both rows emit is the terminator: the one that ends the batch earliest
        rows = [r.tolist() for r in first.tokens]
        shared = set(rows[0]) & set(rows[1])
        assert shared, rows
        stop_token = min(shared, key=lambda t: max(r.index(t) for r in rows))
        dynamic = greedy_decode(llm, prompt.embeds, stop_token, pad, 12, past=lqa.llm_prompt(lqa_layout(), [z]).past)
        static = StaticDecoder(check_every=5).decode(llm, prompt.embeds, stop_token, pad, 12,
                                                     past=lqa.llm_prompt(lqa_layout(), [z]).past)
    assert dynamic.tokens.shape[1] < 12  # the forced terminator ended it early
    assert torch.equal(static.tokens, dynamic.tokens) and torch.equal(static.mask, dynamic.mask)
    torch.testing.assert_close(static.hidden, dynamic.hidden, atol=1e-5, rtol=1e-5)


def lqa_layout():
    from rar.lqa.prompts import IDENTIFY_QUESTION, IDENTIFY_TASK, SINGLE_Q_TAIL, query_layout

    return query_layout(IDENTIFY_TASK, IDENTIFY_QUESTION + SINGLE_Q_TAIL)


def test_caches_are_reused_and_the_step_traces_as_one_graph(lqa):
    """The kept cache is reset and reused across calls; the step compiles with fullgraph=True
    (the eager backend only traces it, which is what a CUDA-graph capture needs on a GPU)."""
    decoder = StaticDecoder(compile_step=True, backend="eager")
    z = torch.randn(2, 48, 8, 8, generator=torch.Generator().manual_seed(1))
    dynamic, static = _assess_both(lqa, z, decoder)
    again = None
    with torch.no_grad():
        again = lqa.assess(z)
    assert len(decoder._caches) == 1 and len(decoder._steps) == 1
    assert torch.equal(static.tokens, dynamic.tokens) and torch.equal(again.tokens, dynamic.tokens)
    torch.testing.assert_close(again.hidden, static.hidden, atol=1e-6, rtol=0)


def test_refuses_gradients_and_bad_arguments(lqa):
    with pytest.raises(ValueError, match="check_every"):
        StaticDecoder(check_every=0)
    llm = lqa.base_llm
    embeds = torch.zeros(1, 3, llm.config.hidden_size)
    with torch.enable_grad(), pytest.raises(RuntimeError, match="no_grad"):
        StaticDecoder().decode(llm, embeds, 2, 0, 4)
    with torch.no_grad(), pytest.raises(ValueError, match="max_new_tokens"):
        StaticDecoder().decode(llm, embeds, 2, 0, 0)
