"""SD3.5 text conditioner on tiny stand-ins: shapes, diffusers parity, zero padding, cache; condition sources."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
from transformers import AutoTokenizer

from rar.conditioning.condition import Condition
from rar.conditioning.sd3_text import SD3TextConditioner, build_sd3_text_conditioner
from rar.conditioning.sources import ConditionInputs, TextCondition, ZeroCondition
from rar.testing import save_tiny_sd3_text_encoders

TEXTS = ["noise, haze", "motion blur and jpeg compression", "dark"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_sd3_text_encoders(tmp_path_factory.mktemp("sd3_text"))


@pytest.fixture
def conditioner(tiny_dir) -> SD3TextConditioner:
    return build_sd3_text_conditioner(str(tiny_dir), t5_max_length=16, cache_size=8)


def test_layout_and_tokenizer_load_through_auto_classes(tiny_dir):
    for sub in ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3"):
        assert (tiny_dir / sub).is_dir()
    tok = AutoTokenizer.from_pretrained(str(tiny_dir), subfolder="tokenizer")
    ids = tok(["Noise, haze"], padding="max_length", max_length=16).input_ids[0]
    assert len(ids) == 16 and ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert ids[4] == tok.eos_token_id and ids[5] == tok.pad_token_id  # <bos> noise , haze <eos> <pad>...


def test_tiny_vocabulary_covers_every_degradation_description(tiny_dir):
    from rar.degradations import DEGRADATIONS, SEVERITIES, DegradationLabel, describe

    tok = AutoTokenizer.from_pretrained(str(tiny_dir), subfolder="tokenizer_3")
    labels = [DegradationLabel(name, {}, severity) for name in DEGRADATIONS for severity in SEVERITIES]
    texts = [describe(labels[:2])] + [describe([lab], severity=True) for lab in labels]
    ids = tok(texts).input_ids
    assert all(tok.unk_token_id not in row for row in ids), [t for t, r in zip(texts, ids, strict=True) if tok.unk_token_id in r]


def test_shapes_and_widths(conditioner):
    cond = conditioner(TEXTS)
    assert cond.prompt_embeds.shape == (3, 32, 64) and cond.pooled.shape == (3, 48)
    assert (conditioner.seq_len, conditioner.joint_dim, conditioner.pooled_dim) == (32, 64, 48)


def test_matches_diffusers_encode_prompt_exactly(conditioner):
    pipe = StableDiffusion3Pipeline(
        transformer=None, scheduler=FlowMatchEulerDiscreteScheduler(), vae=None,
        text_encoder=conditioner.clip_l, tokenizer=conditioner.tokenizer_l,
        text_encoder_2=conditioner.clip_g, tokenizer_2=conditioner.tokenizer_g,
        text_encoder_3=conditioner.t5, tokenizer_3=conditioner.tokenizer_t5,
    )
    embeds, _, pooled, _ = pipe.encode_prompt(
        TEXTS, None, None, do_classifier_free_guidance=False, max_sequence_length=16
    )
    cond = conditioner(TEXTS)
    assert torch.equal(cond.prompt_embeds, embeds) and torch.equal(cond.pooled, pooled)


def test_clip_part_is_zero_padded_to_t5_width(conditioner):
    e = conditioner(TEXTS).prompt_embeds
    clip_rows, t5_rows = e[:, :16], e[:, 16:]
    assert torch.all(clip_rows[..., 48:] == 0)
    assert clip_rows[..., :16].abs().sum() > 0 and clip_rows[..., 16:48].abs().sum() > 0  # CLIP-L, CLIP-G
    assert t5_rows[..., 48:].abs().sum() > 0
    assert not torch.equal(e[0], e[1])  # different texts, different embeddings


def test_cache_hit_does_not_call_the_encoders(conditioner):
    calls = {"clip_l": 0, "clip_g": 0, "t5": 0}
    for name in calls:
        getattr(conditioner, name).register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1))
    first = conditioner(["noise", "haze", "noise"])
    assert calls == {"clip_l": 1, "clip_g": 1, "t5": 1} and conditioner.encoded_texts == 2
    second = conditioner(["haze", "noise", "haze"])
    assert calls == {"clip_l": 1, "clip_g": 1, "t5": 1} and conditioner.encoded_texts == 2
    assert torch.equal(second.prompt_embeds[1], first.prompt_embeds[0])
    assert torch.equal(second.pooled[0], first.pooled[1])
    conditioner(["dark", "noise"])  # only the new text is encoded
    assert conditioner.encoded_texts == 3 and calls["t5"] == 2


def test_cache_is_lru_bounded(tiny_dir):
    c = build_sd3_text_conditioner(str(tiny_dir), t5_max_length=16, cache_size=2)
    c(["a"]), c(["b"]), c(["a"]), c(["c"])  # "b" is least recently used
    assert list(c._cache) == ["a", "c"]
    c(["b"])
    assert c.encoded_texts == 4


def test_frozen_and_rejects_bad_input(conditioner):
    conditioner.train()
    assert not conditioner.training and not conditioner.t5.training
    assert not any(p.requires_grad for p in conditioner.parameters())
    with pytest.raises(TypeError, match="list of strings"):
        conditioner("noise")
    with pytest.raises(ValueError, match="empty"):
        conditioner([])


class FakeUIR(torch.nn.Module):
    """Just the widths a UIR advertises."""

    joint_attention_dim, pooled_projection_dim = 64, 48


def test_text_source_describes_labels_and_uses_the_conditioner(conditioner):
    source = TextCondition(describe=", ".join)
    inputs = ConditionInputs(torch.zeros(2, 48, 4, 4), labels=[["noise", "haze"], ["dark"]])
    assert source.texts(inputs) == ["noise, haze", "dark"]
    cond = source({"conditioner": conditioner}, inputs)
    ref = conditioner(["noise, haze", "dark"])
    assert torch.equal(cond.prompt_embeds, ref.prompt_embeds)
    with pytest.raises(ValueError, match="labels"):
        source({"conditioner": conditioner}, ConditionInputs(torch.zeros(2, 48, 4, 4)))
    with pytest.raises(ValueError, match="batch of 2"):
        source({"conditioner": conditioner}, ConditionInputs(torch.zeros(2, 48, 4, 4), labels=[["dark"]]))


def test_zero_source_reads_widths_from_the_uir():
    cond = ZeroCondition(seq_len=5)({"uir": FakeUIR()}, ConditionInputs(torch.ones(3, 48, 4, 4)))
    assert isinstance(cond, Condition)
    assert cond.prompt_embeds.shape == (3, 5, 64) and cond.pooled.shape == (3, 48)
    assert cond.prompt_embeds.abs().sum() == 0 and cond.pooled.abs().sum() == 0
    assert ZeroCondition.requires == ("uir",) and TextCondition.requires == ("conditioner",)
