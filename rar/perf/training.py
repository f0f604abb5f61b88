"""Training-step benchmark: seconds per optimizer step, throughput, model FLOPs / MFU and peak
memory of one training stage at one setting (called by ``scripts/bench.py``).

A timed step is what the shared loop (:mod:`rar.training.loop`) does per optimizer step, without
data loading or logging::

    with sdpa_kernel(attention):                     # forward and backward (checkpoint recompute)
        with autocast(bf16): loss = stage(batch).loss
        loss.backward()
    clip_grad_norm_(trainable, max_grad_norm); optimizer.step(); optimizer.zero_grad(set_to_none=True)

with ``torch.optim.AdamW`` (``weight_decay=0``, ``configs/optimizer/adamw.yaml``) over the
parameters the stage config's phase trains (:data:`TRAINABLE`, the ``phases[0].trainable``
patterns of ``configs/stage/<stage>.yaml``, matched by :mod:`rar.training.phases`). One fixed
batch of random images is reused every step (already on the device).

Stages (:data:`STAGES`):

* ``uir`` — :class:`~rar.training.stages.uir.UIRStage` training ``uir.*`` with a
  :class:`~rar.conditioning.sources.ZeroCondition` of the text adapter's output length: the
  paper's text-conditioned ``uir`` stage reads a per-text cache, so its condition costs nothing
  per step and only its shape matters (``[B, 333, 4096]`` for SD3.5).
* ``joint`` — :class:`~rar.training.stages.joint.JointStage` with its defaults (those of
  ``configs/stage/joint.yaml``: ``K = 4``, one random segment per example, one Euler step per
  rollout segment, no gradient through the rollout).
* ``lqa_finetune`` — :class:`~rar.training.stages.lqa_finetune.LQAFinetuneStage` on ``batch``
  DepictQA-format records (identification and comparison, as ``configs/data/lqa_tiny.yaml``
  mixes them) of ``resolution``-pixel images, read through the latent path.

Precision: ``mixed_precision="bf16"`` runs the forward under ``torch.autocast(device, bfloat16)``
(what Accelerate does); the backward and the optimizer run outside it. Trainable parameters are
made float32 for the benchmark (AdamW keeps fp32 master weights, as in training): a caller that
stores the networks in bf16 (e.g. the 7B LLM) gets only its *trainable* parameters upcast (LoRA,
adapters, the UIR), the frozen ones stay as given. The modules are handed back as they came
(dtypes, ``requires_grad``, train/eval modes, gradient checkpointing); their values have taken
``warmup + steps`` optimizer steps. Gradient checkpointing recomputes the MMDiT blocks and the LLM
layers; transformers checkpoints only modules in train mode, and ``joint`` runs its LQA in eval
mode (``lqa_dropout=False``), so there only the MMDiT recomputes.

FLOPs (:attr:`TrainingBench.flops_per_step`) are *model* FLOPs in the convention of
:mod:`rar.perf.flops`: every forward call of a trained network during the timed steps is
recorded (input shapes only) by module hooks and priced analytically afterwards; a call whose
output carries gradients counts ``3 ×`` its forward (:func:`rar.perf.flops.training_flops`),
a call without gradients ``1 ×``; the sum is divided by ``steps``. Counted:

* ``uir``: each call of the MMDiT (:func:`~rar.perf.flops.mmdit_forward_flops` at the call's
  latent size, condition length and batch). In the ``uir`` stage that is one forward with
  gradients: ``3 · mmdit(h, w, T, B)`` exactly.
* ``llm``: each call of the LLaMA body (:func:`~rar.perf.flops.llama_forward_flops` with the
  call's new tokens, batch and KV-cache length; ``lm_head`` priced separately on the rows it
  actually runs on). In ``joint`` the rollout's greedy decoding (prefix, prompt, one call per
  generated token) counts ``1 ×`` and the teacher-forced prompt + answer forward ``3 ×``; in
  ``lqa_finetune`` the padded record batch counts ``3 ×`` (lm_head on answer positions only).
* ``adapters``: the LQA's image adapter and projector and the text adapter, priced by
  ``FlopCounterMode`` on one sample of each recorded input shape (their cost is linear in the
  batch), with the same ``3 × / 1 ×`` rule.

Not counted: the frozen autoencoder's encode (input preprocessing), LoRA's low-rank products
(< 1 % of Vicuna-7B at ``r = 16``; more for the 128-wide tiny LLM), elementwise work, the sampler's Euler updates, and recomputation
under gradient checkpointing. In ``joint`` the rollout depth is random (one segment per example):
the count is what the timed steps did, under ``seed``, so it matches the timed work. Networks with
no analytic model (the SD1.5 UNet ablation backbone) give ``flops_per_step = None``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rar.conditioning.sources import ZeroCondition
from rar.core.compile import compile_repeated_blocks, uncompile_repeated_blocks
from rar.core.timing import synchronize
from rar.data.batch import RestorationBatch, RestorationSample
from rar.degradations import DegradationLabel
from rar.lqa.datasets import LQABatch, SyntheticIQADataset, collate_lqa
from rar.lqa.model import DepictQA
from rar.perf.flop_tracer import FlopTracer
from rar.perf.flops import (
    mfu,
    peak_flops,
)
from rar.pipeline.fast_paths import FastPaths
from rar.training.phases import matching_parameters, set_trainable
from rar.training.stage import Stage
from rar.training.stages.joint import JointStage
from rar.training.stages.lqa_finetune import LQAFinetuneStage
from rar.training.stages.uir import UIRStage

STAGES = ("uir", "joint", "lqa_finetune")
REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    "uir": ("autoencoder", "uir", "text_adapter"),
    "joint": ("autoencoder", "lqa", "text_adapter", "uir"),
    "lqa_finetune": ("autoencoder", "lqa"),
}
"""Modules each stage needs (``uir`` reads only the text adapter's output length)."""
TRAINABLE: dict[str, tuple[str, ...]] = {
    "uir": ("uir.*",),
    "joint": ("uir.*", "text_adapter.*", "lqa.image_adapter.*", "lqa.llm.*lora_*"),
    "lqa_finetune": ("lqa.image_adapter.*", "lqa.llm.*lora_*"),
}
"""``phases[0].trainable`` of ``configs/stage/<stage>.yaml``, for ``uir`` of ``configs/condition/text.yaml``
(a test keeps them equal)."""
MIXED_PRECISIONS: dict[str | None, str | None] = {None: None, "no": None, "bf16": "bfloat16"}
"""Accelerate's names → the autocast dtype. fp16 needs loss scaling and is not benchmarked."""

# labels of the random images behind the lqa_finetune records (cycled over the batch)
_RECORD_LABELS = (("noise",), ("haze",), ("noise", "jpeg"), ("dark", "noise"))


@dataclass
class TrainingBench:
    """One stage at one setting.

    Attributes:
        stage, batch, resolution, device, mixed_precision, gradient_checkpointing, fused_adamw,
            attention: the setting (``resolution``: image side in pixels; ``mixed_precision``:
            ``"bf16"`` or None).
        step_seconds: mean wall time of one timed optimizer step.
        samples_per_second: ``batch / step_seconds`` (pairs for ``uir``/``joint``, records for
            ``lqa_finetune``).
        flops_per_step: model FLOPs of one step (module docstring); None without an analytic model.
        mfu: ``flops_per_step / step_seconds / peak`` in ``[0, 1]``; None where the peak is unknown (CPU).
        peak_memory_bytes: ``torch.cuda.max_memory_allocated`` over the timed steps on CUDA; None on CPU.
        trainable_parameters: parameters the optimizer updates.
        flops_parts: ``flops_per_step`` by network and gradient mode: ``{uir,llm,adapters}_{train,nograd}``
            (``train`` already ``3 ×``).
        peak_flops_per_second: the dense peak MFU divides by (the autocast dtype's rate, else that of
            the main network's weights: the UIR for ``uir``/``joint``, the LLM for ``lqa_finetune``).
        loss: loss of the last timed step (finite; random weights, so only a sanity value).
    """

    stage: str
    batch: int
    resolution: int
    device: str
    mixed_precision: str | None
    gradient_checkpointing: bool
    fused_adamw: bool | None
    attention: str
    step_seconds: float
    samples_per_second: float
    flops_per_step: float | None
    mfu: float | None
    peak_memory_bytes: int | None
    trainable_parameters: int
    flops_parts: dict[str, float] = field(default_factory=dict)
    peak_flops_per_second: float | None = None
    loss: float = float("nan")


# ----------------------------------------------------------------------------- FLOP tracing
def _restoration_batch(batch: int, resolution: int, device: torch.device, seed: int) -> RestorationBatch:
    g = torch.Generator().manual_seed(seed)
    hq = torch.rand(batch, 3, resolution, resolution, generator=g)
    lq = (hq + 0.1 * torch.randn(hq.shape, generator=g)).clamp(0, 1)
    labels = [[DegradationLabel("noise", {}, "medium")] for _ in range(batch)]
    return RestorationBatch(lq.to(device), hq.to(device), labels, [str(i) for i in range(batch)], ["bench"] * batch)


class _RandomPairs(torch.utils.data.Dataset):
    """Random ``resolution``-pixel pairs with fixed labels: the source of the benchmark records."""

    def __init__(self, n: int, resolution: int, seed: int) -> None:
        self.n, self.resolution, self.seed = n, resolution, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> RestorationSample:
        pair = _restoration_batch(1, self.resolution, torch.device("cpu"), self.seed + i)
        labels = [DegradationLabel(name, {}, "medium") for name in _RECORD_LABELS[i % len(_RECORD_LABELS)]]
        return RestorationSample(pair.lq[0], pair.hq[0], labels, str(i), "bench")


def _record_batch(batch: int, resolution: int, device: torch.device, seed: int) -> LQABatch:
    """``batch`` DepictQA-format records (``SyntheticIQADataset`` defaults: half comparisons)."""
    records = SyntheticIQADataset(_RandomPairs(batch, resolution, seed), seed=seed)
    return collate_lqa([records[i] for i in range(batch)]).to(device)


def _build(stage: str, modules: Mapping[str, nn.Module], options: Mapping[str, Any], batch: int,
           resolution: int, device: torch.device, seed: int) -> tuple[Stage, Any]:
    if stage == "uir":
        seq_len = modules["text_adapter"].queries.shape[0]
        built = UIRStage(modules["autoencoder"], modules["uir"], ZeroCondition(seq_len), **options)
        return built, _restoration_batch(batch, resolution, device, seed)
    if stage == "joint":
        built = JointStage(modules["autoencoder"], modules["lqa"], modules["text_adapter"], modules["uir"], **options)
        return built, _restoration_batch(batch, resolution, device, seed)
    built = LQAFinetuneStage(modules["autoencoder"], modules["lqa"], **options)
    return built, _record_batch(batch, resolution, device, seed)


@contextlib.contextmanager
def _borrowed(networks: list[nn.Module]) -> Iterator[list[Callable[[], None]]]:
    """Hand ``networks`` back as they came: train/eval modes, ``requires_grad`` and dtypes of their
    parameters (grads dropped), after running the undo callbacks the body appends to the yielded list."""
    modules = {m for net in networks for m in net.modules()}
    modes = {m: m.training for m in modules}
    state = {p: (p.requires_grad, p.dtype) for net in networks for p in net.parameters()}
    undo: list[Callable[[], None]] = []
    try:
        yield undo
    finally:
        for fn in reversed(undo):
            fn()
        for p, (flag, dtype) in state.items():
            p.grad = None
            if p.dtype != dtype:
                p.data = p.data.to(dtype)
            p.requires_grad_(flag)
        for m, mode in modes.items():
            m.training = mode
            if isinstance(m, DepictQA):
                m.prefix_kv.clear()  # its weights changed (optimizer steps, dtype round trip)


def _prepare(stage: Stage, trainable: list[str], checkpointing: bool, undo: list) -> list[nn.Parameter]:
    """Freeze all but ``trainable`` (made float32: AdamW's master weights), train mode, and
    gradient checkpointing if asked (its undos appended to ``undo``); returns the trainable parameters."""
    params = set_trainable(stage, trainable)
    for p in params:
        if p.dtype != torch.float32:
            p.data = p.data.float()
    stage.train()
    if checkpointing:
        undo.extend(_enable_checkpointing(stage))
    return params


def _enable_checkpointing(stage: Stage) -> list:
    """Gradient checkpointing of the MMDiT blocks and the LLM's decoder layers (where not on
    already); returns the undos.

    transformers checkpoints a layer only in train mode: the ``joint`` stage runs the LLM in eval
    mode (``lqa_dropout=False``), so there only the MMDiT recomputes."""
    undo = []
    backbone = getattr(getattr(stage, "uir", None), "backbone", None)
    if backbone is not None and not backbone.is_gradient_checkpointing:
        backbone.enable_gradient_checkpointing()
        undo.append(backbone.disable_gradient_checkpointing)
    lqa = getattr(stage, "lqa", None)
    if lqa is not None and not any(getattr(m, "gradient_checkpointing", False) for m in lqa.base_llm.modules()):
        llm = lqa.base_llm
        kwargs = {"use_reentrant": False}
        if hasattr(llm, "activation_checkpointing_enable"):  # transformers >= 5
            llm.activation_checkpointing_enable(kwargs)
            undo.append(llm.activation_checkpointing_disable)
        else:
            llm.gradient_checkpointing_enable(kwargs)
            undo.append(llm.gradient_checkpointing_disable)
        undo.append(llm.disable_input_require_grads)  # enable_input_require_grads comes with it
    return undo


def _compute_dtype(stage: str, modules: Mapping[str, nn.Module], autocast: str | None) -> torch.dtype:
    if autocast is not None:
        return getattr(torch, autocast)
    if stage == "lqa_finetune":
        return modules["lqa"].base_llm.get_input_embeddings().weight.dtype
    return next(modules["uir"].parameters()).dtype


def _check(stage: str, modules: Mapping[str, nn.Module], batch: int, resolution: int, steps: int,
           warmup: int, mixed_precision: str | None) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r}; known: {list(STAGES)}")
    missing = [m for m in REQUIRED_MODULES[stage] if m not in modules]
    if missing:
        raise KeyError(f"stage {stage!r} needs modules {list(REQUIRED_MODULES[stage])}; missing {missing} "
                       f"(got {sorted(modules)})")
    for name, value, minimum in (("batch", batch, 1), ("resolution", resolution, 1), ("steps", steps, 1),
                                 ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if mixed_precision not in MIXED_PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {list(MIXED_PRECISIONS)}, got {mixed_precision!r} "
                         "(fp16 needs a loss scaler and is not benchmarked)")



# ----------------------------------------------------------------------------- benchmark
def bench_training(
    stage: str,
    modules: Mapping[str, nn.Module],
    *,
    batch: int,
    resolution: int,
    device: torch.device,
    mixed_precision: str | None = None,
    steps: int = 5,
    warmup: int = 2,
    gradient_checkpointing: bool = False,
    fused_adamw: bool | None = None,
    attention: str = "auto",
    lr: float = 1e-4,
    seed: int = 0,
    max_grad_norm: float | None = 1.0,
    stage_options: Mapping[str, Any] | None = None,
    compile_blocks: bool = False,
) -> TrainingBench:
    """Time ``steps`` training steps of ``stage`` after ``warmup`` untimed ones.

    Args:
        stage: one of :data:`STAGES`.
        modules: the stage's networks by config-group name (:data:`REQUIRED_MODULES`), already on
            ``device`` in their storage dtype.
        batch: pairs (``uir``, ``joint``) or records (``lqa_finetune``) per step.
        resolution: image side in pixels (the latent side is the autoencoder's ``resolution / stride``).
        device: where the modules are.
        mixed_precision: ``"bf16"`` (autocast) or None / ``"no"``.
        steps, warmup: timed and untimed steps.
        gradient_checkpointing: recompute the MMDiT blocks and LLM layers in backward.
        fused_adamw: ``torch.optim.AdamW(fused=...)`` (None: torch's default, the foreach kernels).
        attention: SDPA kernels allowed (:data:`rar.pipeline.fast_paths.ATTENTION_BACKENDS`).
        lr: AdamW learning rate.
        seed: seeds the batch and the stage's sampling (timesteps, rollout depths).
        max_grad_norm: gradient clipping as the loop does (None: none).
        stage_options: extra keyword arguments of the stage class (e.g. ``segment_sampling="all"``).
        compile_blocks: regional compilation of the MMDiT blocks and LLM layers
            (:func:`rar.core.compile.compile_repeated_blocks`), undone afterwards.

    Raises:
        ValueError: unknown stage, bad sizes or precision; KeyError: a needed module is missing;
        FloatingPointError: a non-finite loss.
    """
    _check(stage, modules, batch, resolution, steps, warmup, mixed_precision)
    device = torch.device(device)
    autocast = MIXED_PRECISIONS[mixed_precision]
    kernels, precision = FastPaths(attention=attention), FastPaths(autocast=autocast)
    lqa = modules["lqa"] if "lqa" in REQUIRED_MODULES[stage] else None
    adapters = {} if lqa is None else {"image_adapter": lqa.image_adapter, "vision_proj": lqa.vision_proj}
    if stage == "joint":
        adapters["text_adapter"] = modules["text_adapter"]
    tracer = FlopTracer(modules["uir"] if "uir" in REQUIRED_MODULES[stage] else None,
                        lqa.base_llm if lqa is not None else None, adapters)

    with _borrowed([modules[name] for name in REQUIRED_MODULES[stage]]) as undo:
        torch.manual_seed(seed)
        built, data = _build(stage, modules, stage_options or {}, batch, resolution, device, seed)
        params = _prepare(built, matching_parameters(built, TRAINABLE[stage]), gradient_checkpointing, undo)
        if compile_blocks:
            compile_repeated_blocks(built)
            undo.append(lambda: uncompile_repeated_blocks(built))
        compute_dtype = _compute_dtype(stage, modules, autocast)
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=fused_adamw)

        def step() -> torch.Tensor:
            # kernels around forward and backward (checkpointed blocks recompute in backward and must
            # pick the forward's kernel); autocast around the forward only
            with kernels.context(device):
                with precision.context(device):
                    loss = built(data).loss
                loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.detach()

        for _ in range(warmup):
            step()
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with tracer:
            start = time.perf_counter()
            losses = [step() for _ in range(steps)]
            synchronize(device)
            seconds = (time.perf_counter() - start) / steps
        peak_memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        n_trainable = sum(p.numel() for p in params)
    loss = torch.stack(losses).float()
    if not bool(torch.isfinite(loss).all()):
        raise FloatingPointError(f"stage {stage!r}: non-finite training loss {loss.tolist()} at batch {batch}, "
                                 f"resolution {resolution}, mixed_precision {mixed_precision!r}")

    parts = tracer.parts(steps)
    flops = sum(parts.values()) if parts is not None else None
    peak = peak_flops(device, compute_dtype)
    return TrainingBench(
        stage=stage, batch=batch, resolution=resolution, device=str(device),
        mixed_precision=None if autocast is None else mixed_precision,
        gradient_checkpointing=gradient_checkpointing, fused_adamw=fused_adamw, attention=attention,
        step_seconds=seconds, samples_per_second=batch / seconds, flops_per_step=flops,
        mfu=mfu(flops, seconds, peak) if flops is not None else None, peak_memory_bytes=peak_memory,
        trainable_parameters=n_trainable, flops_parts=parts or {}, peak_flops_per_second=peak,
        loss=float(loss[-1]),
    )


def largest_batch(fits: Callable[[int], object], start: int = 1, limit: int = 1024) -> int | None:
    """The largest batch ``b`` in ``start, 2·start, 4·start, ...`` (at most ``limit``) for which
    ``fits(b)`` runs without a CUDA out-of-memory error, refined by bisection between the last
    fitting and the first failing size; None if even ``start`` does not fit."""
    def ok(b: int) -> bool:
        try:
            fits(b)
            return True
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return False

    if not ok(start):
        return None
    good, bad = start, None
    while bad is None and good * 2 <= limit:
        bad, good = (None, good * 2) if ok(good * 2) else (good * 2, good)
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if ok(mid) else (good, mid)
    return good
