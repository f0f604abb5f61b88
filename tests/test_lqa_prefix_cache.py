"""The LQA's shared-prefix KV cache: same answers as without it, used only in inference, kept fresh."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import spy, tiny_latent_lqa

from rar.lqa.generation import PrefixKV
from rar.lqa.prompts import (
    COMPARE_QUESTION,
    COMPARE_TASK,
    IDENTIFY_TEMPLATES,
    SINGLE_Q_TAIL,
    Turn,
    build_layout,
)
from rar.pipeline.model_folder import load_component, save_component

OTHER_QUESTION = IDENTIFY_TEMPLATES[1][0] + SINGLE_Q_TAIL


@pytest.fixture
def lqa(tiny_dir):
    return tiny_latent_lqa(tiny_dir, max_new_tokens=6)


def _answers(lqa, z, cached: bool) -> dict:
    lqa.prefix_cache = cached
    with torch.no_grad():
        return {"assess": lqa.assess(z), "identify": lqa.assess(z, question=OTHER_QUESTION),
                "describe": lqa.describe(z, max_new_tokens=8), "compare": lqa.p_better(z, z.flip(0) + 0.5)}


def _assert_same(a: dict, b: dict, rows=slice(None)) -> None:
    """``a`` equals the rows ``rows`` of ``b`` (``b`` may have decoded longer, for other rows)."""
    for key in ("assess", "identify"):
        n = a[key].tokens.shape[1]
        assert torch.equal(a[key].tokens, b[key].tokens[rows, :n]), key
        assert torch.equal(a[key].mask, b[key].mask[rows, :n]) and not b[key].mask[rows, n:].any(), key
        assert a[key].text == b[key].text[rows], key
        torch.testing.assert_close(a[key].hidden, b[key].hidden[rows, :n], atol=1e-5, rtol=0)
    assert a["describe"] == b["describe"][rows]
    torch.testing.assert_close(a["compare"].logit, b["compare"].logit[rows], atol=1e-5, rtol=0)
    torch.testing.assert_close(a["compare"].p_better, b["compare"].p_better[rows], atol=1e-6, rtol=0)


@pytest.mark.parametrize("batch", [1, 3])
def test_cached_answers_equal_uncached(lqa, batch):
    z = torch.randn(batch, 48, 8, 8, generator=torch.Generator().manual_seed(batch))
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        spy(mp, PrefixKV, "past", calls)
        uncached = _answers(lqa, z, cached=False)
        assert not calls and len(lqa.prefix_kv) == 0
        cached = _answers(lqa, z, cached=True)
    assert len(calls) == 4  # every call read it ...
    assert len(lqa.prefix_kv) == 2  # ... from one entry per task: identify (any question) and compare
    _assert_same(cached, uncached)
    if batch > 1:  # rows stay independent: row 1 of the batch = row 1 alone
        _assert_same(_answers(lqa, z[1:2], cached=True), cached, rows=slice(1, 2))


def test_expanded_prefix_is_a_view_of_the_stored_states(lqa):
    layout = build_layout(COMPARE_TASK, [Turn("human", COMPARE_QUESTION)])
    z = torch.randn(4, 48, 8, 8)
    with torch.no_grad():
        prompt = lqa.llm_prompt(layout, [z, z], "latent")
        full = lqa.prompt_embeds(layout, [z, z], "latent")
    [(keys, _)] = [layers[0] for layers in lqa.prefix_kv._entries.values()]
    layer = prompt.past.layers[0]
    assert layer.keys.shape[0] == 4 and layer.keys.stride(0) == 0 and layer.keys.data_ptr() == keys.data_ptr()
    assert prompt.past_length + prompt.embeds.shape[1] == full.shape[1]
    torch.testing.assert_close(prompt.embeds, full[:, prompt.past_length:], atol=0, rtol=0)
    assert prompt.past_length == int(lqa.tokenize([layout]).image_mask[0].nonzero()[0, 0]) > 20  # BOS + system


def test_cache_is_dropped_when_it_could_be_stale(lqa):
    z = torch.randn(2, 48, 8, 8)
    with torch.no_grad():
        lqa.assess(z)
    assert len(lqa.prefix_kv) == 1
    lqa.eval()
    assert len(lqa.prefix_kv) == 1  # eval() again keeps it (the pipelines call it every time)
    lqa.train()
    assert len(lqa.prefix_kv) == 0
    lqa.eval()
    with torch.no_grad():
        lqa.p_better(z, z)
    assert len(lqa.prefix_kv) == 1
    lqa.to(torch.float32)
    assert len(lqa.prefix_kv) == 0

    with torch.no_grad():
        lqa.assess(z)
        for name, param in lqa.llm.named_parameters():  # an in-place update (optimizer step, load_state_dict)
            if "lora_B" in name:
                param.add_(0.05)
        after = lqa.assess(z)
        lqa.prefix_cache = False
        uncached = lqa.assess(z)
    assert torch.equal(after.tokens, uncached.tokens)
    torch.testing.assert_close(after.hidden, uncached.hidden, atol=1e-5, rtol=0)


def test_training_and_gradients_never_read_the_cache(lqa, monkeypatch):
    calls = []
    spy(monkeypatch, PrefixKV, "past", calls)
    layout = build_layout(COMPARE_TASK, [Turn("human", COMPARE_QUESTION), Turn("gpt", "Image A")])
    z = torch.randn(2, 48, 8, 8)
    grads = []
    for cached in (False, True):
        lqa.prefix_cache = cached
        lqa.train()
        torch.manual_seed(1)  # the same LoRA/abstractor dropout masks in both runs
        lqa.zero_grad()
        lqa([layout], z).loss.backward()
        grads.append({n: p.grad.clone() for n, p in lqa.named_parameters() if p.grad is not None})
        lqa.eval()
        a = lqa.assess(z, max_new_tokens=3)  # eval mode but gradients on: the uncached, differentiable path
        assert a.hidden.requires_grad
    assert not calls and len(lqa.prefix_kv) == 0
    assert grads[0].keys() == grads[1].keys() and any("lora_B" in n for n in grads[0])
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])
    lqa.zero_grad()
    with pytest.raises(RuntimeError, match="no_grad"):
        lqa.prefix_kv.past(lqa.base_llm, (1,), torch.zeros(1, 1, 128), 2)


def test_switch_round_trips_through_the_component_folder(lqa, tmp_path):
    lqa.prefix_cache = False
    path = save_component(lqa, tmp_path / "lqa")
    config = json.loads((tmp_path / "lqa/config.json").read_text())
    assert config["prefix_cache"] is False
    assert load_component(path, tmp_path / "lqa").prefix_cache is False
    del config["prefix_cache"]  # a folder written before the switch existed
    (tmp_path / "lqa/config.json").write_text(json.dumps(config))
    assert load_component(path, tmp_path / "lqa").prefix_cache is True
