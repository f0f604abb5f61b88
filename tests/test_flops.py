"""Analytic FLOP counts (rar.perf.flops): a hand count, agreement with torch's FlopCounterMode on
the real diffusers / transformers forwards, real-scale checks against parameter counts, and MFU."""

from __future__ import annotations

import pytest
import torch
from diffusers import SD3Transformer2DModel
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from rar.lqa.architectures import vicuna_7b_v15_config
from rar.perf.flops import (
    PEAK_FLOPS,
    llama_forward_flops,
    mfu,
    mmdit_forward_flops,
    peak_flops,
    peak_flops_for_name,
    training_flops,
)
from rar.uir.backbones import SD3_PRESETS

TINY_SD3 = {
    "patch_size": 2, "in_channels": 4, "out_channels": 4, "num_layers": 2, "num_attention_heads": 2,
    "attention_head_dim": 8, "joint_attention_dim": 16, "caption_projection_dim": 16, "pooled_projection_dim": 8,
    "pos_embed_max_size": 16, "sample_size": 8,
}


def counted_flops(fn) -> int:
    """FLOPs FlopCounterMode sees in ``fn()``. The math SDPA backend runs attention as two bmm's that
    FlopCounterMode counts; the CPU flash kernel (``_scaled_dot_product_flash_attention_for_cpu``)
    has no FLOP formula in torch and would count 0."""
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_mmdit_hand_count():
    # D = 2 heads x 8 = 16; latent 8x8 with patch 2 -> N = 16 image tokens; T = 5 text tokens; B = 1.
    # Linear(i, o) on r rows costs 2·r·i·o.
    expected = {
        # Conv2d(4 -> 16, kernel 2, stride 2): 16 patches x 16 out x (4·2·2 = 16) in
        "patch_embed": 2 * 16 * 16 * 16,  # 8192
        # timestep MLP 256->16->16 and pooled MLP 8->16->16, one row each
        "embeddings": 2 * 256 * 16 + 2 * 16 * 16 + 2 * 8 * 16 + 2 * 16 * 16,  # 9472
        # context_embedder 16 -> 16 on 5 text rows
        "caption_projection": 2 * 5 * 16 * 16,  # 2560
        # block 0: norm1 16->96, norm1_context 16->96; block 1 (context_pre_only): norm1 16->96,
        # norm1_context (continuous) 16->32; norm_out 16->32
        "adaln": 2 * 16 * 96 + 2 * 16 * 96 + 2 * 16 * 96 + 2 * 16 * 32 + 2 * 16 * 32,  # 11264
        # block 0: 4 image projections (q,k,v,out) on 16 rows + 4 context ones (add_q,k,v, to_add_out) on 5 rows;
        # block 1: 4 image + 3 context (no to_add_out)
        "attention_proj": (4 * 2 * 16 * 16 * 16 + 4 * 2 * 5 * 16 * 16)
        + (4 * 2 * 16 * 16 * 16 + 3 * 2 * 5 * 16 * 16),  # 43008 + 40448 = 83456
        # per block QKᵀ and AV over N+T = 21 tokens, 2 heads of 8: 2 x (2·2·21·21·8)
        "attention_scores": 2 * (2 * (2 * 2 * 21 * 21 * 8)),  # 56448
        # FeedForward 16->64->16: block 0 image (16 rows) + context (5 rows); block 1 image only
        "mlp": (2 * 2 * 16 * 16 * 64 + 2 * 2 * 5 * 16 * 64) + 2 * 2 * 16 * 16 * 64,  # 86016 + 65536 = 151552
        # proj_out 16 -> 2·2·4 = 16 on 16 rows
        "proj_out": 2 * 16 * 16 * 16,  # 8192
    }
    count = mmdit_forward_flops(TINY_SD3, latent_height=8, latent_width=8, text_tokens=5)
    assert count.parts == expected
    assert count.total == 331136 == sum(expected.values())

    model = SD3Transformer2DModel(**TINY_SD3).eval()
    assert counted_flops(lambda: model(torch.randn(1, 4, 8, 8), torch.randn(1, 5, 16), torch.randn(1, 8),
                                       torch.tensor([500.0]))) == 331136


@pytest.mark.parametrize("overrides", [
    {},  # SD3.0 / SD3.5-large structure
    {"num_layers": 3, "dual_attention_layers": (0, 2), "qk_norm": "rms_norm"},  # MMDiT-X (SD3.5 medium), last block dual too
    {"patch_size": 1, "qk_norm": "rms_norm"},  # the tiny UIR's patch size
])
def test_mmdit_matches_flop_counter(overrides):
    torch.manual_seed(0)
    model = SD3Transformer2DModel(**{**TINY_SD3, **overrides}).eval()
    x, text, pooled = torch.randn(2, 4, 8, 12), torch.randn(2, 7, 16), torch.randn(2, 8)
    counted = counted_flops(lambda: model(x, text, pooled, torch.tensor([1.0, 700.0])))
    analytic = mmdit_forward_flops(dict(model.config), latent_height=8, latent_width=12, text_tokens=7, batch=2)
    assert analytic.total == counted


def tiny_llama(head_dim: int | None = None) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, head_dim=head_dim,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("head_dim", [None, 16])
def test_llama_matches_flop_counter(head_dim):
    model = tiny_llama(head_dim)
    prompt, new = torch.randint(0, 50, (2, 7)), torch.randint(0, 50, (2, 3))

    # prefill, logits on every position
    assert llama_forward_flops(model.config, seq_len=7, batch=2).total == counted_flops(lambda: model(prompt))

    def with_cache(logits_to_keep: int) -> int:
        cache = model(prompt, use_cache=True).past_key_values
        return counted_flops(lambda: model(new, past_key_values=cache, use_cache=True, logits_to_keep=logits_to_keep))

    # 3 new tokens over 7 cached: logits on the last one, then on all three
    assert llama_forward_flops(model.config, 3, batch=2, past_len=7, lm_head_tokens=1).total == with_cache(1)
    assert llama_forward_flops(model.config.to_dict(), 3, batch=2, past_len=7).total == with_cache(0)


def test_sd35_real_scale_matches_weight_count():
    """At 512 px (64x64 latents, N = 1024 image tokens) with T = 333 text tokens, every weight matrix
    of the (meta-device) model is used once per row it sees: image-stream weights per image token,
    context-stream weights per text token, AdaLN/timestep weights once per sample."""
    for name in ("sd35_medium", "sd35_large"):
        config = SD3_PRESETS[name]
        with torch.device("meta"):
            model = SD3Transformer2DModel(**config)
        n_img, n_txt = 32 * 32, 333
        weight_flops = 0
        for module_name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
                continue
            if "norm" in module_name or "time_text_embed" in module_name:
                rows = 1
            elif any(key in module_name for key in ("add_", "ff_context", "context_embedder")):
                rows = n_txt
            else:
                rows = n_img
            weight_flops += 2 * module.weight.numel() * rows
        count = mmdit_forward_flops(config, 64, 64, 333)
        assert count.total == weight_flops + count.parts["attention_scores"]
        # The naive 2 x params x tokens overestimates an MMDiT: each token sees only its own stream's
        # weights and ~1/3 of the parameters (AdaLN) act once per sample. Measured: 0.40 (medium), 0.37 (large).
        params = sum(p.numel() for p in model.parameters())
        assert 0.3 < count.total / (2 * params * (n_img + n_txt)) < 0.5
        # attention products add 9% (large) and 17% (medium) on top of the weight FLOPs
        assert 0.05 < count.parts["attention_scores"] / weight_flops < 0.3


def test_vicuna_prefill_is_two_flops_per_weight_per_token():
    config = vicuna_7b_v15_config()
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - 6.74e9) < 0.01e9
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    count = llama_forward_flops(config, seq_len=200)
    # QKᵀ + AV: 32 layers x 2 products x 2·32 heads·200·200·128
    attention = 32 * 2 * 2 * 32 * 200 * 200 * 128
    assert count.parts["attention_scores"] == attention
    # every linear weight (lm_head included) once per token; the embedding lookup costs nothing
    assert count.total == 2 * linear * 200 + attention
    # so 2 x 6.74e9 x tokens (all params) is within 2% above the non-attention part
    assert 0.97 < (count.total - attention) / (2 * params * 200) < 1.0


def test_training_flops_and_mfu():
    assert training_flops(1.5e12) == 4.5e12
    assert mfu(3e12, 0.01, 1e15) == pytest.approx(0.3)
    assert mfu(3e12, 0.01, None) is None
    with pytest.raises(ValueError, match="seconds_per_step"):
        mfu(3e12, 0.0, 1e15)
    with pytest.raises(ValueError, match="forward_flops"):
        training_flops(-1.0)


def test_peak_flops_table():
    assert peak_flops_for_name("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989.4e12  # SXM
    assert peak_flops_for_name("NVIDIA H100 PCIe", torch.float16) == 756e12
    assert peak_flops_for_name("NVIDIA H100 NVL", torch.bfloat16) == 835e12
    assert peak_flops_for_name("NVIDIA H200", torch.bfloat16) == 989.4e12
    assert peak_flops_for_name("NVIDIA GH200 480GB", torch.bfloat16) == PEAK_FLOPS[("GH200", "bf16")]
    assert peak_flops_for_name("NVIDIA A100-SXM4-80GB", torch.bfloat16) == 312e12
    assert peak_flops_for_name("NVIDIA L40S", torch.bfloat16) == 362.05e12
    precision = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert peak_flops_for_name("NVIDIA A100-PCIE-40GB", torch.float32) == 19.5e12
        torch.set_float32_matmul_precision("high")
        assert peak_flops_for_name("NVIDIA A100-PCIE-40GB", torch.float32) == 156e12
    finally:
        torch.set_float32_matmul_precision(precision)
    assert peak_flops_for_name("Tesla T4", torch.bfloat16) is None
    assert peak_flops_for_name("NVIDIA H100 80GB HBM3", torch.int8) is None
    assert peak_flops("cpu", torch.bfloat16) is None


@pytest.mark.parametrize(("call", "message"), [
    (lambda: mmdit_forward_flops(TINY_SD3, 8, 7, 5), "latent_width=7 is not divisible by patch_size=2"),
    (lambda: mmdit_forward_flops(TINY_SD3, 40, 8, 5), "20 patches, more than pos_embed_max_size=16"),
    (lambda: mmdit_forward_flops({**TINY_SD3, "caption_projection_dim": 12}, 8, 8, 5), "caption_projection_dim"),
    (lambda: mmdit_forward_flops({**TINY_SD3, "dual_attention_layers": (5,)}, 8, 8, 5), r"\[5\] outside"),
    (lambda: mmdit_forward_flops(TINY_SD3, 8, 8, 0), "text_tokens must be an int >= 1, got 0"),
    (lambda: llama_forward_flops(tiny_llama().config, 4, lm_head_tokens=5), "lm_head_tokens=5 exceeds seq_len=4"),
    (lambda: llama_forward_flops(tiny_llama().config, 4, past_len=-1), "past_len must be an int >= 0"),
    (lambda: llama_forward_flops({**tiny_llama().config.to_dict(), "num_key_value_heads": 3}, 4),
     "num_attention_heads=4 is not a multiple of num_key_value_heads=3"),
])
def test_bad_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_missing_config_key():
    config = {k: v for k, v in TINY_SD3.items() if k != "num_layers"}
    with pytest.raises(KeyError, match="MMDiT config is missing required key 'num_layers'"):
        mmdit_forward_flops(config, 8, 8, 5)
    with pytest.raises(KeyError, match="LLaMA config is missing required key 'vocab_size'"):
        llama_forward_flops({k: v for k, v in tiny_llama().config.to_dict().items() if k != "vocab_size"}, 4)
