"""The RAR loop: call counts, the stop rule, per-image stopping in a batch, prompts, timing, settings."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from helpers import spy
from torch import nn
from transformers import CLIPTextModelWithProjection, T5EncoderModel

from rar.conditioning.sd3_text import SD3TextConditioner
from rar.core.outputs import STAGES, MethodOutput
from rar.core.timing import StageClock
from rar.eval.method import Method
from rar.lqa.assess import assess_and_adapt
from rar.lqa.model import Assessment, Comparison
from rar.lqa.prompts import COMPARE_QUESTION, IDENTIFY_QUESTION, SINGLE_Q_TAIL
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig, RARPipeline
from rar.pipeline.prompts import (
    COMPARE_PROMPTS,
    IDENTIFY_PROMPTS,
    comparison_question,
    identification_question,
)
from rar.testing import build_tiny_rar_pipeline


@pytest.fixture(scope="module")
def depictqa_dir(tmp_path_factory):
    return save_tiny_depictqa(tmp_path_factory.mktemp("depictqa"), phrases=["noise", "haze", "dark"])


@pytest.fixture(scope="module")
def pipe(depictqa_dir):
    return build_tiny_rar_pipeline(depictqa_dir, LoopConfig(max_rounds=2, steps_per_round=2), uir_layers=1,
                                   max_new_tokens=4, lora_std=0.05)


class StubLQA(nn.Module):
    """An assessor with scripted comparisons: ``verdicts`` is a list, per ``p_better`` call, of
    per-image probabilities (or one float for every call). Records the batch size of each call."""

    image_space = "latent"
    hidden_size = 128

    def __init__(self, verdicts: float | list[list[float]]) -> None:
        super().__init__()
        self.verdicts = verdicts
        self.assess_batches: list[int] = []
        self.compare_batches: list[int] = []

    def assess(self, x: torch.Tensor, space=None, question=None) -> Assessment:
        b = x.shape[0]
        self.assess_batches.append(b)
        feature = x.mean(dim=(1, 2, 3))
        hidden = feature[:, None, None].expand(b, 2, self.hidden_size).contiguous()
        return Assessment(hidden, torch.ones(b, 2, dtype=torch.bool), [f"stub {v:.4f}" for v in feature.tolist()],
                          torch.zeros(b, 2, dtype=torch.long))

    def p_better(self, x_a: torch.Tensor, x_b: torch.Tensor, space=None, question=None) -> Comparison:
        self.compare_batches.append(x_a.shape[0])
        if isinstance(self.verdicts, float):
            p = torch.full((x_a.shape[0],), self.verdicts)
        else:
            p = torch.tensor(self.verdicts[len(self.compare_batches) - 1])
        assert p.shape == (x_a.shape[0],), "scripted verdicts must match the active batch"
        return Comparison(p, torch.logit(p.clamp(1e-6, 1 - 1e-6)))


def stub_pipeline(pipe: RARPipeline, verdicts, **settings) -> RARPipeline:
    config = LoopConfig(max_rounds=3, steps_per_round=1, **settings)
    return RARPipeline(pipe.autoencoder, pipe.uir, StubLQA(verdicts), pipe.text_adapter, config)


@contextmanager
def settings(pipe: RARPipeline, **changes):
    """Temporarily change the shared pipeline's loop settings."""
    saved = pipe.config
    pipe.with_config(**changes)
    try:
        yield pipe
    finally:
        pipe.config = saved


def counting(monkeypatch, obj, name: str, counts: list[int]):
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        first = args[0] if args else None
        counts.append(first.shape[0] if isinstance(first, torch.Tensor) else 1)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)


@pytest.mark.parametrize("input_detail", [False, True])
def test_one_encode_one_decode_per_image_and_no_text_encoder(pipe, monkeypatch, input_detail):
    """One encode and one decode of the kept latents; ``input_detail`` adds exactly one decode of
    the input's latent (its reconstruction), never a second encode."""
    encoded, decoded, text_calls = [], [], []
    counting(monkeypatch, pipe.autoencoder, "encode", encoded)
    counting(monkeypatch, pipe.autoencoder, "decode", decoded)
    for cls in (SD3TextConditioner, CLIPTextModelWithProjection, T5EncoderModel):
        counting(monkeypatch, cls, "forward", text_calls)
    with settings(pipe, stop="fixed", max_rounds=2, input_detail=input_detail):
        out = pipe(torch.rand(3, 3, 18, 22))
    assert encoded == [3] and decoded == ([3, 3] if input_detail else [3]) and text_calls == []
    assert (out.detail is not None) == input_detail
    assert out.images.shape == (3, 3, 18, 22) and all(len(t.rounds) == 2 for t in out.trajectories)


def test_rejecting_assessor_returns_the_input_round_trip(pipe):
    lq = torch.rand(2, 3, 13, 21)
    stub = stub_pipeline(pipe, 0.0)
    result = stub(lq)
    torch.testing.assert_close(result.images, lq, atol=0, rtol=0)  # space-to-depth is lossless
    for traj in result.trajectories:
        assert traj.stopped_by == "compare" and traj.rounds_applied == 0 and len(traj.rounds) == 1
        assert traj.rounds[0].p_better == 0.0 and not traj.rounds[0].accepted and traj.rounds[0].text.startswith("stub")


def test_preferring_assessor_runs_max_rounds(pipe):
    lq = torch.rand(2, 3, 16, 16)
    stub = stub_pipeline(pipe, 1.0)
    result = stub(lq)
    assert all(t.stopped_by == "max_rounds" and t.rounds_applied == 3 for t in result.trajectories)
    assert stub.lqa.compare_batches == [2, 2, 2] and not torch.equal(result.images, lq)


def test_round_one_has_its_own_threshold(pipe):
    # every comparison says 0.6: round 1 passes its own 0.5, round 2 fails the later rounds' 0.9
    stub = stub_pipeline(pipe, 0.6, threshold=0.9, first_threshold=0.5)
    result = stub(torch.rand(2, 3, 16, 16))
    for traj in result.trajectories:
        assert [r.accepted for r in traj.rounds] == [True, False] and traj.rounds_applied == 1
    assert stub.lqa.compare_batches == [2, 2]
    # without it, round 1 is held to the same 0.9 and the input comes back
    assert all(t.rounds_applied == 0 for t in stub_pipeline(pipe, 0.6, threshold=0.9)(torch.rand(1, 3, 16, 16)).trajectories)
    assert LoopConfig(threshold=0.9, first_threshold=0.2).threshold_at(1) == 0.2
    assert LoopConfig(threshold=0.9, first_threshold=0.2).threshold_at(2) == 0.9 == LoopConfig(threshold=0.9).threshold_at(1)


def test_fixed_stop_never_compares(pipe):
    stub = stub_pipeline(pipe, 0.0, stop="fixed")
    result = stub(torch.rand(2, 3, 16, 16))
    assert stub.lqa.compare_batches == [] and stub.lqa.assess_batches == [2, 2, 2]
    assert all(r.p_better is None and r.accepted for t in result.trajectories for r in t.rounds)


def test_per_image_stops_shrink_the_batch_and_match_single_runs(pipe):
    lq = torch.rand(3, 3, 16, 20)
    batched = stub_pipeline(pipe, [[1.0, 0.0, 1.0], [1.0, 0.0], [1.0]])
    result = batched(lq, return_latents=True)
    assert batched.lqa.assess_batches == [3, 2, 1] and batched.lqa.compare_batches == [3, 2, 1]
    assert [len(t.rounds) for t in result.trajectories] == [3, 1, 2]
    assert [t.stopped_by for t in result.trajectories] == ["max_rounds", "compare", "compare"]
    torch.testing.assert_close(result.images[1], lq[1], atol=0, rtol=0)
    for i, verdicts in ((0, [[1.0], [1.0], [1.0]]), (2, [[1.0], [0.0]])):
        single = stub_pipeline(pipe, verdicts)(lq[i : i + 1], return_latents=True)
        torch.testing.assert_close(result.images[i], single.images[0], atol=1e-5, rtol=1e-4)
        for a, b in zip(result.trajectories[i].rounds, single.trajectories[0].rounds, strict=True):
            torch.testing.assert_close(a.latent, b.latent, atol=1e-5, rtol=1e-4)
    # the rejected round's latent is recorded, but the output is the previous (accepted) one; the
    # loop decodes the two changed images as one batch, so decode them the same way (a batch of one
    # may round differently by ~1e-6)
    kept = torch.stack([result.trajectories[0].rounds[-1].latent, result.trajectories[2].rounds[0].latent])
    kept = pipe.state_image(kept, (16, 20), result.detail[[0, 2]])
    torch.testing.assert_close(result.images[[0, 2]], kept, atol=1e-6, rtol=0)


def test_assess_every_reassesses_the_intermediate_latent(pipe):
    stub = stub_pipeline(pipe, 1.0, stop="fixed", assess_every=2)
    stub.config = stub.config.replace(max_rounds=1, steps_per_round=5)
    stub(torch.rand(2, 3, 16, 16))
    assert stub.lqa.assess_batches == [2, 2, 2]  # start of the round, then before steps 2 and 4


def test_batched_equals_one_at_a_time_with_the_real_lqa(pipe):
    lq = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    with settings(pipe, stop="compare", max_rounds=2, assess_every=1, prompt_pool="random", threshold=0.0):
        first = sorted(t.rounds[0].p_better for t in pipe(lq).trajectories)
    # a threshold between the two lowest first-round scores: one image stops after round 1, two go on
    threshold = (first[0] + first[1]) / 2
    with settings(pipe, stop="compare", max_rounds=2, assess_every=1, prompt_pool="random", threshold=threshold):
        batched = pipe(lq)
        singles = [pipe(lq[i : i + 1]) for i in range(3)]
    assert sorted(len(t.rounds) for t in batched.trajectories) == [1, 2, 2]
    for i, single in enumerate(singles):
        torch.testing.assert_close(batched.images[i], single.images[0], atol=1e-5, rtol=1e-4)
        a, b = batched.trajectories[i], single.trajectories[0]
        assert a.texts == b.texts and a.stopped_by == b.stopped_by
        assert [r.accepted for r in a.rounds] == [r.accepted for r in b.rounds]
        assert [r.p_better for r in a.rounds] == pytest.approx([r.p_better for r in b.rounds], abs=1e-5)


def test_method_protocol_and_stage_seconds(pipe):
    assert isinstance(pipe, Method)
    out = pipe.restore(torch.rand(2, 3, 16, 16))
    assert isinstance(out, MethodOutput) and out.images.shape == (2, 3, 16, 16)
    assert all(1 <= r <= pipe.config.max_rounds for r in out.rounds) and [len(x) for x in out.labels] == out.rounds
    assert set(out.seconds) == set(STAGES) and all(v >= 0 for v in out.seconds.values())
    assert float(out.images.min()) >= 0 and float(out.images.max()) <= 1


def test_assess_and_adapt_reproduces_assess_and_the_prompt_pool_is_seeded(pipe):
    z = torch.randn(2, 16, 4, 5)
    default = pipe.lqa.assess(z)
    cond, asked = assess_and_adapt(pipe.lqa, pipe.text_adapter, z, question=IDENTIFY_QUESTION + SINGLE_Q_TAIL)
    assert asked.text == default.text and torch.equal(asked.tokens, default.tokens)
    torch.testing.assert_close(asked.hidden, default.hidden, atol=0, rtol=0)
    expected = pipe.text_adapter(default.hidden, default.mask)
    torch.testing.assert_close(cond.prompt_embeds, expected.prompt_embeds, atol=0, rtol=0)
    torch.testing.assert_close(cond.pooled, expected.pooled, atol=0, rtol=0)
    assert len(set(IDENTIFY_PROMPTS)) == 24 and identification_question("fixed", 0, 1) is None
    draws = [identification_question("random", 7, r, s) for r in range(1, 5) for s in range(3)]
    assert draws == [identification_question("random", 7, r, s) for r in range(1, 5) for s in range(3)]
    assert len(set(draws)) > 1 and all(d.endswith(SINGLE_Q_TAIL) for d in draws)
    assert draws != [identification_question("random", 8, r, s) for r in range(1, 5) for s in range(3)]
    # the stop rule's question is drawn per round too (S.3: the pool applies at every decision step)
    assert len(set(COMPARE_PROMPTS)) == 16 and COMPARE_PROMPTS[0] == COMPARE_QUESTION
    assert comparison_question("fixed", 0, 1) is None
    compares = [comparison_question("random", 7, r) for r in range(1, 9)]
    assert compares == [comparison_question("random", 7, r) for r in range(1, 9)] and len(set(compares)) > 1
    assert all(q.endswith(SINGLE_Q_TAIL) and q.removesuffix(SINGLE_Q_TAIL) in COMPARE_PROMPTS for q in compares)


def test_random_pool_asks_the_drawn_comparison_question_each_round(pipe):
    calls = []
    with settings(pipe, stop="compare", max_rounds=3, prompt_pool="random", threshold=0.0, seed=3), \
            pytest.MonkeyPatch.context() as mp:
        spy(mp, pipe.lqa, "p_better", calls)
        pipe(torch.rand(1, 3, 16, 16))
    assert [kw["question"] for _, kw in calls] == [comparison_question("random", 3, r) for r in (1, 2, 3)]
    with settings(pipe, stop="compare", max_rounds=1, prompt_pool="fixed"), pytest.MonkeyPatch.context() as mp:
        calls.clear()
        spy(mp, pipe.lqa, "p_better", calls)
        pipe(torch.rand(1, 3, 16, 16))
    assert calls[0][1]["question"] is None  # the LQA's own question


def test_loop_settings_are_checked():
    with pytest.raises(ValueError, match="stop must be one of"):
        LoopConfig(stop="never")
    with pytest.raises(ValueError, match="threshold"):
        LoopConfig(threshold=1.5)
    with pytest.raises(ValueError, match="first_threshold must be None or lie in"):
        LoopConfig(first_threshold=-0.1)
    with pytest.raises(TypeError, match="unknown loop settings"):
        LoopConfig().replace(rounds=2)


def test_bad_inputs_are_rejected_clearly(pipe):
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        pipe(torch.rand(3, 16, 16))
    wide = torch.rand(1, 3, 16, 4 * 64 + 1)  # over the largest side: tiled (tests/test_tiling.py), not refused
    assert pipe(wide).images.shape == wide.shape


def test_stage_clock_charges_nested_sections_to_the_inner_stage():
    clock = StageClock()
    with clock.section("restore"), clock.section("assess"):  # nested: the inner section takes the time
        torch.randn(300, 300) @ torch.randn(300, 300)
    assert set(clock.seconds) == {"restore", "assess"} and clock.seconds["assess"] > 0
    assert abs(clock.total() - sum(clock.seconds.values())) < 1e-12



@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batched_equals_single_and_bf16_runs(depictqa_dir, tmp_path):
    config = LoopConfig(max_rounds=2, steps_per_round=2, assess_every=1, threshold=0.0)
    pipe = build_tiny_rar_pipeline(depictqa_dir, config, uir_layers=1, max_new_tokens=4, lora_std=0.05).to("cuda")
    lq = torch.rand(3, 3, 20, 28, generator=torch.Generator().manual_seed(2)).cuda()
    batched = pipe(lq)
    assert batched.images.is_cuda and set(batched.seconds) == set(STAGES)
    for i in range(3):
        single = pipe(lq[i : i + 1])
        # cuDNN/SDPA pick batch-dependent kernels (TF32 convolutions): equal up to float noise, not bitwise
        torch.testing.assert_close(batched.images[i], single.images[0], atol=2e-3, rtol=1e-2)
        assert batched.trajectories[i].texts == single.trajectories[0].texts
    folder = pipe.save_pretrained(tmp_path / "model")
    again = RARPipeline.from_pretrained(folder, device="cuda")
    assert torch.equal(again(lq).images, batched.images)
    half = RARPipeline.from_pretrained(folder, device="cuda", dtype="bfloat16")
    out = half(lq)
    assert out.images.dtype == torch.float32 and torch.isfinite(out.images).all()
    assert {p.dtype for n, p in half.named_parameters() if "lora_" not in n} == {torch.bfloat16}


@pytest.mark.parametrize("input_floor", [True, False])
def test_an_image_that_keeps_no_round_is_its_input_or_its_reconstruction(pipe, monkeypatch, input_floor):
    """``input_floor``: a rejected first round returns the input itself and decodes nothing for it;
    without it (the paper's loop) the decoded ``z_lq``, which a lossy autoencoder changes."""
    lq = torch.rand(2, 3, 30, 34, generator=torch.Generator().manual_seed(0))
    stub = stub_pipeline(pipe, [[0.0, 1.0], [0.0]], input_floor=input_floor,  # image 0 rejected at round 1
                         input_detail=False)
    decoded: list[int] = []
    decode = stub.autoencoder.decode
    monkeypatch.setattr(stub.autoencoder, "decode", lambda z, size=None: decoded.append(len(z)) or decode(z, size))
    result = stub(lq)
    assert [len(t.rounds) for t in result.trajectories] == [1, 2]
    reconstruction = decode(stub.autoencoder.encode(lq), size=lq.shape[-2:]).clamp(0, 1)
    assert not torch.allclose(reconstruction[0], lq[0], atol=1e-2)  # the random tiny autoencoder is lossy
    if input_floor:
        assert torch.equal(result.images[0], lq[0]) and decoded == [1]
    else:
        torch.testing.assert_close(result.images[0], reconstruction[0])
        assert decoded == [2]
    assert not torch.allclose(result.images[1], lq[1], atol=1e-2)
