"""Training-step benchmark (rar.perf.training) on the tiny models of the configs: every stage gives
finite numbers, the trained parameters are the stage configs', the FLOP count equals the analytic
expression (uir) and torch's FlopCounterMode (joint's rollout + gradient pass), modules come back
unchanged in kind, and bad input is refused."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from rar.data.batch import RestorationBatch
from rar.perf.flops import mmdit_forward_flops, training_flops
from rar.perf.training import STAGES, TRAINABLE, FlopTracer, bench_training
from rar.training.stages.joint import JointStage

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CPU = torch.device("cpu")
FAST = {"batch": 2, "resolution": 32, "device": CPU, "steps": 1, "warmup": 1}


def _tiny(group: str, tiny_dir: Path, **overrides):
    """Instantiate ``configs/<group>/tiny.yaml`` (``tiny_kl`` for the autoencoder) with the session's tiny weights folder."""
    name = "tiny_kl" if group == "autoencoder" else "tiny"
    cfg = OmegaConf.create({"tiny_dir": str(tiny_dir), "node": OmegaConf.load(CONFIGS / group / f"{name}.yaml")})
    return instantiate(cfg.node, **overrides)


@pytest.fixture(scope="module")
def modules(tiny_dir):
    torch.manual_seed(0)
    return {group: _tiny(group, tiny_dir) for group in ("autoencoder", "uir", "lqa", "text_adapter")}


def _config_patterns(stage: str) -> tuple[str, ...]:
    """``phases[0].trainable`` of the stage config; for ``uir`` that of its UIR-only layout (the
    text-conditioned stage, ``configs/condition/text.yaml``), which is what the bench times."""
    config = CONFIGS / "condition" / "text.yaml" if stage == "uir" else CONFIGS / "stage" / f"{stage}.yaml"
    node = OmegaConf.load(config)
    node.joint_lqa = "train"  # joint: the paper's layout (the bench times it)
    return tuple(node.phases[0].trainable)


def _expected_trainable(stage: str, modules) -> int:
    patterns = _config_patterns(stage)
    named = {f"{group}.{n}": p for group, m in modules.items() for n, p in m.named_parameters()}
    return sum(p.numel() for n, p in named.items() if any(fnmatch.fnmatchcase(n, pat) for pat in patterns))


def _finite_positive(*values: float) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def test_trainable_patterns_are_the_stage_configs():
    for stage in STAGES:
        assert TRAINABLE[stage] == _config_patterns(stage)


def test_uir_step_counts_the_mmdit_exactly(modules):
    r = bench_training("uir", modules, **FAST)
    assert _finite_positive(r.step_seconds, r.samples_per_second, r.flops_per_step, r.loss)
    assert r.samples_per_second == pytest.approx(2 / r.step_seconds)
    # 32 px / 4 = 8x8 latents, the text adapter's 32 condition tokens, batch 2, forward + backward
    expected = training_flops(mmdit_forward_flops(modules["uir"].backbone.config, 8, 8, 32, 2).total)
    assert r.flops_per_step == expected and set(r.flops_parts) == {"uir_train"}
    assert r.trainable_parameters == _expected_trainable("uir", modules) == sum(
        p.numel() for p in modules["uir"].parameters())
    assert r.mfu is None and r.peak_memory_bytes is None and r.peak_flops_per_second is None


@pytest.mark.parametrize("stage", ["joint", "lqa_finetune"])
def test_lqa_stages_give_finite_numbers(stage, modules):
    r = bench_training(stage, modules, **FAST)
    assert _finite_positive(r.step_seconds, r.samples_per_second, r.flops_per_step, r.loss)
    assert r.trainable_parameters == _expected_trainable(stage, modules)
    assert r.mfu is None and r.peak_memory_bytes is None
    assert r.flops_per_step == pytest.approx(sum(r.flops_parts.values()))
    if stage == "joint":  # rollout without gradients, then the gradient pass through every network
        assert set(r.flops_parts) == {f"{n}_{g}" for n in ("uir", "llm", "adapters") for g in ("train", "nograd")}
    else:
        assert set(r.flops_parts) == {"llm_train", "adapters_train"}


def test_modules_come_back_as_they_were(modules):
    state = {(g, n): (p.dtype, p.requires_grad) for g, m in modules.items() for n, p in m.named_parameters()}
    modes = {(g, n): m.training for g, mod in modules.items() for n, m in mod.named_modules()}
    lqa = modules["lqa"]
    lqa.base_llm.to(torch.bfloat16)  # a bf16 LLM: its LoRA trains in float32 and goes back to bf16
    try:
        r = bench_training("lqa_finetune", modules, mixed_precision="bf16", gradient_checkpointing=True,
                           attention="math", **FAST)
        assert math.isfinite(r.loss) and r.mixed_precision == "bf16"
        assert all(p.dtype == torch.bfloat16 for p in lqa.base_llm.parameters())
    finally:
        lqa.base_llm.to(torch.float32)
    assert state == {(g, n): (p.dtype, p.requires_grad) for g, m in modules.items() for n, p in m.named_parameters()}
    assert modes == {(g, n): m.training for g, mod in modules.items() for n, m in mod.named_modules()}
    assert not any(getattr(m, "gradient_checkpointing", False) for m in lqa.base_llm.modules())
    assert not modules["uir"].backbone.is_gradient_checkpointing


def test_joint_trace_matches_flop_counter(tiny_dir):
    """The traced analytic count of one joint forward (gradient pass / 3 + rollout) equals exactly what
    FlopCounterMode sees, for an LQA without LoRA (whose low-rank products the count leaves out)."""
    torch.manual_seed(0)
    lqa = _tiny("lqa", tiny_dir, lora_r=None)
    text_adapter, uir = _tiny("text_adapter", tiny_dir), _tiny("uir", tiny_dir)
    stage = JointStage(_tiny("autoencoder", tiny_dir), lqa, text_adapter, uir).train()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    batch = RestorationBatch(0.5 * x, x, [[]] * 3, ["a", "b", "c"], ["t"] * 3)
    adapters = {"image_adapter": lqa.image_adapter, "vision_proj": lqa.vision_proj, "text_adapter": text_adapter}

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder layer has no FLOP formula
    try:
        with sdpa_kernel(SDPBackend.MATH):
            torch.manual_seed(1)
            with FlopTracer(uir, lqa.base_llm, adapters) as tracer:
                stage(batch)
            lqa.prefix_kv.clear()
            stage.requires_grad_(False)  # forward only
            torch.manual_seed(1)
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                stage(batch)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    parts = tracer.parts()
    traced = sum(v / 3 if k.endswith("_train") else v for k, v in parts.items())
    assert parts["uir_nograd"] > 0 and parts["llm_nograd"] > 0
    with torch.no_grad(), FlopCounterMode(display=False) as encoding:  # the frozen VAE is not a traced part
        stage.autoencoder.encode(batch.lq), stage.autoencoder.encode(batch.hq)
    # exact: same shapes, same formulas
    assert traced == pytest.approx(counter.get_total_flops() - encoding.get_total_flops(), rel=1e-9)


def test_bad_input_is_refused(modules):
    with pytest.raises(ValueError, match=r"unknown training stage 'lqa'.*'uir', 'joint', 'lqa_finetune'"):
        bench_training("lqa", modules, **FAST)
    with pytest.raises(KeyError, match=r"missing \['lqa'\]"):
        bench_training("joint", {k: v for k, v in modules.items() if k != "lqa"}, **FAST)
    with pytest.raises(ValueError, match="mixed_precision"):
        bench_training("uir", modules, mixed_precision="fp16", **FAST)
    with pytest.raises(ValueError, match="batch must be an int >= 1"):
        bench_training("uir", modules, **{**FAST, "batch": 0})
