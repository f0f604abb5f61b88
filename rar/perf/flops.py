"""Analytic forward FLOPs of the UIR's MMDiT and the LQA's LLaMA, and MFU from device peaks.

Counting convention (the one ``torch.utils.flop_counter.FlopCounterMode`` uses, so the two agree):

- 2 FLOPs per multiply-accumulate of every matmul, linear layer and convolution. Bias adds,
  elementwise ops, norms, softmax, activations, RoPE, positional-embedding adds and the
  timestep sinusoid are not counted.
- Attention counts both products, ``Q Kᵀ`` and ``softmax(·) V``, each ``2 · B · heads · Lq · Lk · d``.
  The square is always full: the MMDiT's joint attention is non-causal, and for LLaMA the causal
  mask's skipped half is counted too (``FlopCounterMode``'s SDPA formula ignores ``is_causal``);
  with a KV cache ``Lk = past_len + seq_len``. GQA shares K/V projections but not the products,
  which run over all query heads.
- Training "model FLOPs" are ``3 ×`` forward (backward = 2 × forward: one product for the input
  gradient, one for the weight gradient); recomputation under gradient checkpointing is not
  counted. This is the MFU convention of PaLM (Chowdhery et al. 2022, appendix B).

MFU = ``flops_per_step / seconds_per_step / peak``, with ``peak`` the dense (no sparsity) tensor-core
rate from NVIDIA's datasheets (:data:`PEAK_FLOPS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PretrainedConfig

_REQUIRED = object()

# diffusers' CombinedTimestepTextProjEmbeddings: Timesteps(num_channels=256) -> TimestepEmbedding(256, dim)
_TIMESTEP_CHANNELS = 256
# diffusers' FeedForward(mult=4, activation_fn="gelu-approximate"): dim -> 4·dim -> dim
_FF_MULT = 4


@dataclass(frozen=True)
class FlopCount:
    """Forward FLOPs of one call.

    Attributes:
        total: all counted FLOPs (sum of ``parts``).
        parts: FLOPs by component. MMDiT: ``patch_embed`` (input conv), ``embeddings`` (timestep and
            pooled-text MLPs), ``caption_projection`` (``context_embedder``), ``adaln`` (every
            AdaLayerNorm modulation linear, ``norm_out`` included), ``attention_proj`` (Q/K/V/out and
            the context stream's added projections, dual-attention ``attn2`` included),
            ``attention_scores`` (``Q Kᵀ`` and ``softmax·V``), ``mlp``, ``proj_out``. LLaMA:
            ``attention_proj``, ``attention_scores``, ``mlp``, ``lm_head``.
    """

    total: float
    parts: dict[str, float]


def _flop_count(parts: dict[str, int]) -> FlopCount:
    return FlopCount(total=float(sum(parts.values())), parts={k: float(v) for k, v in parts.items()})


def _get(config: Mapping[str, Any] | PretrainedConfig, key: str, default: Any = _REQUIRED, what: str = "") -> Any:
    """``config[key]`` from a mapping or a transformers config; ``default`` when absent or None."""
    value = getattr(config, key, None) if isinstance(config, PretrainedConfig) else config.get(key)
    if value is None:
        if default is _REQUIRED:
            raise KeyError(f"{what} config is missing required key {key!r} (got keys: {sorted(_keys(config))})")
        return default
    return value


def _keys(config: Mapping[str, Any] | PretrainedConfig) -> list[str]:
    return list(config.to_dict()) if isinstance(config, PretrainedConfig) else [str(k) for k in config]


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _linear(rows: int, fan_in: int, fan_out: int) -> int:
    """FLOPs of ``nn.Linear(fan_in, fan_out)`` on ``rows`` input rows (bias not counted)."""
    return 2 * rows * fan_in * fan_out


def _sdpa(batch: int, heads: int, q_len: int, k_len: int, head_dim: int) -> int:
    """FLOPs of ``Q Kᵀ`` plus ``softmax·V``, full (non-causal) square."""
    return 2 * (2 * batch * heads * q_len * k_len * head_dim)


def mmdit_forward_flops(
    config: Mapping[str, Any], latent_height: int, latent_width: int, text_tokens: int, batch: int = 1
) -> FlopCount:
    """Forward FLOPs of diffusers' ``SD3Transformer2DModel`` (SD3 / SD3.5 MMDiT, MMDiT-X).

    Args:
        config: the model's config (``dict(model.config)`` or a ``SD3_PRESETS`` entry); needs
            ``patch_size, in_channels, num_layers, attention_head_dim, num_attention_heads,
            joint_attention_dim, caption_projection_dim, pooled_projection_dim``; ``out_channels``
            defaults to ``in_channels`` and ``dual_attention_layers`` to ``()`` as in diffusers.
        latent_height, latent_width: latent pixels before patchify (image / 8 for the SD3.5 VAE).
        text_tokens: length ``T`` of ``encoder_hidden_states`` (333 for SD3.5's CLIP+T5).
        batch: batch size ``B`` (classifier-free guidance doubles it).

    Per block (``N`` image tokens, ``D`` inner dim): joint attention over ``N + T`` tokens, with the
    last block ``context_pre_only`` (no context out-projection, context MLP or context AdaLN-Zero);
    blocks in ``dual_attention_layers`` add an image-only self-attention and a 9·D AdaLN.
    """
    what = "MMDiT"
    patch = _positive("patch_size", _get(config, "patch_size", what=what))
    in_channels = _get(config, "in_channels", what=what)
    out_channels = _get(config, "out_channels", in_channels, what=what)
    num_layers = _get(config, "num_layers", what=what)
    heads = _get(config, "num_attention_heads", what=what)
    head_dim = _get(config, "attention_head_dim", what=what)
    joint_dim = _get(config, "joint_attention_dim", what=what)
    caption_dim = _get(config, "caption_projection_dim", what=what)
    pooled_dim = _get(config, "pooled_projection_dim", what=what)
    dual_layers = {int(i) for i in _get(config, "dual_attention_layers", (), what=what)}
    pos_embed_max = _get(config, "pos_embed_max_size", 0, what=what)
    dim = heads * head_dim
    if caption_dim != dim:
        raise ValueError(
            f"MMDiT config: caption_projection_dim ({caption_dim}) must equal num_attention_heads x "
            f"attention_head_dim ({heads} x {head_dim} = {dim}); the blocks read the projected captions"
        )
    if bad := sorted(i for i in dual_layers if not 0 <= i < num_layers):
        raise ValueError(f"MMDiT config: dual_attention_layers {bad} outside range(num_layers={num_layers})")
    for name, size in (("latent_height", latent_height), ("latent_width", latent_width)):
        _positive(name, size)
        if size % patch:
            raise ValueError(f"{name}={size} is not divisible by patch_size={patch}")
        if pos_embed_max and size // patch > pos_embed_max:
            raise ValueError(
                f"{name}={size} gives {size // patch} patches, more than pos_embed_max_size={pos_embed_max}"
            )
    _positive("text_tokens", text_tokens)
    _positive("batch", batch)

    n_img = (latent_height // patch) * (latent_width // patch)
    n_txt = text_tokens
    img_rows, txt_rows = batch * n_img, batch * n_txt
    parts = {
        # Conv2d(in_channels, D, kernel=stride=patch): one D x (C·p²) product per patch
        "patch_embed": _linear(img_rows, in_channels * patch * patch, dim),
        # TimestepEmbedding(256 -> D -> D) + PixArtAlphaTextProjection(pooled -> D -> D), one row per sample
        "embeddings": _linear(batch, _TIMESTEP_CHANNELS, dim) + _linear(batch, dim, dim)
        + _linear(batch, pooled_dim, dim) + _linear(batch, dim, dim),
        "caption_projection": _linear(txt_rows, joint_dim, caption_dim),
        # norm_out: AdaLayerNormContinuous linear D -> 2D
        "adaln": _linear(batch, dim, 2 * dim),
        "attention_proj": 0,
        "attention_scores": 0,
        "mlp": 0,
        "proj_out": _linear(img_rows, dim, patch * patch * out_channels),
    }
    for layer in range(num_layers):
        context_pre_only = layer == num_layers - 1
        dual = layer in dual_layers
        # norm1: AdaLayerNormZero (6D) or SD35AdaLayerNormZeroX (9D); norm1_context: Zero (6D) or Continuous (2D)
        parts["adaln"] += _linear(batch, dim, (9 if dual else 6) * dim)
        parts["adaln"] += _linear(batch, dim, (2 if context_pre_only else 6) * dim)
        # image to_q/to_k/to_v/to_out, context add_q/add_k/add_v (+ to_add_out unless context_pre_only)
        parts["attention_proj"] += 4 * _linear(img_rows, dim, dim)
        parts["attention_proj"] += (3 if context_pre_only else 4) * _linear(txt_rows, dim, dim)
        parts["attention_scores"] += _sdpa(batch, heads, n_img + n_txt, n_img + n_txt, head_dim)
        if dual:  # attn2: image-only self-attention
            parts["attention_proj"] += 4 * _linear(img_rows, dim, dim)
            parts["attention_scores"] += _sdpa(batch, heads, n_img, n_img, head_dim)
        parts["mlp"] += 2 * _linear(img_rows, dim, _FF_MULT * dim)
        if not context_pre_only:
            parts["mlp"] += 2 * _linear(txt_rows, dim, _FF_MULT * dim)
    return _flop_count(parts)


def llama_forward_flops(
    config: Mapping[str, Any] | PretrainedConfig,
    seq_len: int,
    batch: int = 1,
    past_len: int = 0,
    lm_head_tokens: int | None = None,
) -> FlopCount:
    """Forward FLOPs of a transformers ``LlamaForCausalLM`` on ``seq_len`` new tokens.

    Args:
        config: a ``LlamaConfig`` or its dict (``hidden_size, intermediate_size, num_hidden_layers,
            num_attention_heads, vocab_size``; ``num_key_value_heads`` defaults to the head count,
            ``head_dim`` to ``hidden_size // num_attention_heads``).
        seq_len: new tokens per sequence (the prompt for a prefill, 1 for a decode step).
        batch: sequences.
        past_len: tokens already in the KV cache; each new token attends to ``past_len + seq_len``.
        lm_head_tokens: positions per sequence the ``lm_head`` runs on; ``None`` = all ``seq_len``
            (transformers' ``logits_to_keep=0``), ``n`` = the last ``n`` (``logits_to_keep=n``),
            ``0`` = no lm_head (the bare ``LlamaModel``).
    """
    what = "LLaMA"
    hidden = _get(config, "hidden_size", what=what)
    intermediate = _get(config, "intermediate_size", what=what)
    num_layers = _get(config, "num_hidden_layers", what=what)
    heads = _get(config, "num_attention_heads", what=what)
    kv_heads = _get(config, "num_key_value_heads", heads, what=what)
    vocab = _get(config, "vocab_size", what=what)
    head_dim = _get(config, "head_dim", None, what=what)
    if head_dim is None:
        if hidden % heads:
            raise ValueError(f"LLaMA config: hidden_size={hidden} is not divisible by num_attention_heads={heads}")
        head_dim = hidden // heads
    if heads % kv_heads:
        raise ValueError(
            f"LLaMA config: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}"
        )
    _positive("seq_len", seq_len)
    _positive("batch", batch)
    _positive("past_len", past_len, minimum=0)
    if lm_head_tokens is None:
        lm_head_tokens = seq_len
    elif _positive("lm_head_tokens", lm_head_tokens, minimum=0) > seq_len:
        raise ValueError(f"lm_head_tokens={lm_head_tokens} exceeds seq_len={seq_len}")

    rows = batch * seq_len
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    per_layer_proj = _linear(rows, hidden, q_dim) + 2 * _linear(rows, hidden, kv_dim) + _linear(rows, q_dim, hidden)
    parts = {
        "attention_proj": num_layers * per_layer_proj,
        "attention_scores": num_layers * _sdpa(batch, heads, seq_len, past_len + seq_len, head_dim),
        # SwiGLU: gate_proj and up_proj hidden -> I, down_proj I -> hidden
        "mlp": num_layers * 3 * _linear(rows, hidden, intermediate),
        "lm_head": _linear(batch * lm_head_tokens, hidden, vocab),
    }
    return _flop_count(parts)


def training_flops(forward_flops: float) -> float:
    """Model FLOPs of one training step: forward + backward = 3 × forward (checkpoint recompute not counted)."""
    if forward_flops < 0:
        raise ValueError(f"forward_flops must be >= 0, got {forward_flops}")
    return 3.0 * forward_flops


# Dense (no sparsity) peak FLOP/s from NVIDIA's datasheets (the sparse figures halved), keyed by
# (substring of torch.cuda.get_device_name, precision). "bf16" also stands for fp16 (same rate);
# "tf32" is float32 matmuls on tensor cores (torch.set_float32_matmul_precision("high")), "fp32"
# the CUDA cores. Matching is case-insensitive and the first matching name in this order wins,
# so more specific names come first ("GH200" before "H200", "H100 NVL" before "H100").
PEAK_FLOPS: dict[tuple[str, str], float] = {
    # H100 datasheet: SXM / PCIe / NVL. SXM reports as "NVIDIA H100 80GB HBM3" (no "SXM"), hence plain "H100".
    ("H100 NVL", "bf16"): 835e12, ("H100 NVL", "tf32"): 417.5e12, ("H100 NVL", "fp32"): 60e12,
    ("H100 PCIe", "bf16"): 756e12, ("H100 PCIe", "tf32"): 378e12, ("H100 PCIe", "fp32"): 51e12,
    ("H100", "bf16"): 989.4e12, ("H100", "tf32"): 494.7e12, ("H100", "fp32"): 67e12,
    # GH200 datasheet (Hopper GPU at H100 SXM rates)
    ("GH200", "bf16"): 989.4e12, ("GH200", "tf32"): 494.7e12, ("GH200", "fp32"): 67e12,
    # H200 datasheet: NVL and SXM
    ("H200 NVL", "bf16"): 835e12, ("H200 NVL", "tf32"): 417.5e12, ("H200 NVL", "fp32"): 60e12,
    ("H200", "bf16"): 989.4e12, ("H200", "tf32"): 494.7e12, ("H200", "fp32"): 67e12,
    # A100 datasheet (SXM and PCIe share the rates)
    ("A100", "bf16"): 312e12, ("A100", "tf32"): 156e12, ("A100", "fp32"): 19.5e12,
    # L40S, L40 and L4 datasheets
    ("L40S", "bf16"): 362.05e12, ("L40S", "tf32"): 183e12, ("L40S", "fp32"): 91.6e12,
    ("L40", "bf16"): 181.05e12, ("L40", "tf32"): 90.5e12, ("L40", "fp32"): 90.5e12,
    ("L4", "bf16"): 121e12, ("L4", "tf32"): 60e12, ("L4", "fp32"): 30.3e12,
}


def peak_flops_for_name(device_name: str, dtype: torch.dtype) -> float | None:
    """Dense peak FLOP/s of the GPU called ``device_name`` for matmuls in ``dtype``; ``None`` if unknown.

    float32 maps to the TF32 rate unless ``torch.get_float32_matmul_precision()`` is ``"highest"``.
    """
    if dtype in (torch.bfloat16, torch.float16):
        precision = "bf16"
    elif dtype == torch.float32:
        precision = "fp32" if torch.get_float32_matmul_precision() == "highest" else "tf32"
    else:
        return None
    name = device_name.lower()
    for key, _ in PEAK_FLOPS:
        if key.lower() in name:
            return PEAK_FLOPS.get((key, precision))
    return None


def peak_flops(device: torch.device | str, dtype: torch.dtype) -> float | None:
    """Dense peak FLOP/s of ``device`` (via ``torch.cuda.get_device_name``); ``None`` on CPU or an unknown GPU."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return peak_flops_for_name(torch.cuda.get_device_name(device), dtype)


def mfu(flops_per_step: float, seconds_per_step: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation in ``[0, 1]`` (ideally): achieved FLOP/s over ``peak``; ``None`` without a peak."""
    if seconds_per_step <= 0:
        raise ValueError(f"seconds_per_step must be > 0, got {seconds_per_step}")
    if flops_per_step < 0:
        raise ValueError(f"flops_per_step must be >= 0, got {flops_per_step}")
    if peak is None:
        return None
    if peak <= 0:
        raise ValueError(f"peak must be > 0 FLOP/s or None, got {peak}")
    return flops_per_step / seconds_per_step / peak
