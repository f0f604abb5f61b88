"""Which trained networks a training step called, with which input shapes, priced analytically.

:class:`FlopTracer` puts forward hooks on the UIR's MMDiT, the LQA's LLaMA body and the adapters
during the timed steps of :func:`rar.perf.training.bench_training`; afterwards each recorded call
is priced with :mod:`rar.perf.flops` (``3 ×`` forward when its output carries gradients, ``1 ×``
otherwise). The adapters have no analytic model: each recorded input shape is priced once by
``FlopCounterMode`` on one sample (their cost is linear in the batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

import torch
from diffusers import SD3Transformer2DModel
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from rar.perf.flops import (
    llama_forward_flops,
    mmdit_forward_flops,
    training_flops,
)


def _grad_carrying(obj: Any) -> bool:
    """Whether a module output (tensor, tuple, mapping, dataclass) holds a tensor that requires grad."""
    if isinstance(obj, torch.Tensor):
        return obj.requires_grad
    if isinstance(obj, Mapping):
        return any(_grad_carrying(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return any(_grad_carrying(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return any(_grad_carrying(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    return False


def _tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    return [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]


class FlopTracer:
    """Records the forward calls of the trained networks while entered; :meth:`parts` prices them.

    Args:
        uir: the UIR (its ``backbone`` is priced if it is an ``SD3Transformer2DModel``) or None.
        llm: the LLaMA causal LM (``lqa.base_llm``: its ``model`` body and ``lm_head``) or None.
        adapters: small networks priced by ``FlopCounterMode`` per sample, by name.

    Hooks record shapes only (no device sync); pricing happens after the block.
    """

    def __init__(self, uir: nn.Module | None, llm: nn.Module | None, adapters: Mapping[str, nn.Module]) -> None:
        self.uir, self.llm, self.adapters = uir, llm, dict(adapters)
        self.calls: list[tuple[str, bool, tuple]] = []  # (network, with gradients, what to price)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._pending: list[tuple[int, int, int]] = []

    def __enter__(self) -> Self:
        if self.uir is not None:
            self._handles.append(self.uir.backbone.register_forward_hook(self._uir_hook, with_kwargs=True))
        if self.llm is not None:
            body = self.llm.model
            self._handles.append(body.register_forward_pre_hook(self._llm_pre_hook, with_kwargs=True))
            self._handles.append(body.register_forward_hook(self._llm_hook))
            self._handles.append(self.llm.lm_head.register_forward_hook(self._lm_head_hook))
        for name, module in self.adapters.items():
            self._handles.append(module.register_forward_hook(self._adapter_hook(name), with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # hooks: record
    def _uir_hook(self, module, args, kwargs, output) -> None:
        x = kwargs.get("hidden_states", args[0] if args else None)
        context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        out = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
        self.calls.append(("uir", out.requires_grad, (x.shape[-2], x.shape[-1], context.shape[1], x.shape[0])))

    def _llm_pre_hook(self, module, args, kwargs) -> None:
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        past = kwargs.get("past_key_values")
        self._pending.append((x.shape[1], x.shape[0], past.get_seq_length() if past is not None else 0))

    def _llm_hook(self, module, args, output) -> None:
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        self.calls.append(("llm", hidden.requires_grad, ("body", *self._pending.pop())))

    def _lm_head_hook(self, module, args, output) -> None:
        self.calls.append(("llm", output.requires_grad, ("lm_head", output.shape[:-1].numel())))

    def _adapter_hook(self, name: str):
        def hook(module, args, kwargs, output) -> None:
            tensors = _tensors(args, kwargs)
            signature = tuple((tuple(t.shape[1:]), t.dtype) for t in tensors)
            self.calls.append(("adapters", _grad_carrying(output), (name, signature, tensors[0].shape[0])))
        return hook

    # pricing
    def parts(self, steps: int = 1) -> dict[str, float] | None:
        """Model FLOPs per step by ``<network>_<train|nograd>`` (``train`` = ``3 ×`` forward), or
        None when a recorded network has no analytic model."""
        if self.uir is not None and not isinstance(self.uir.backbone, SD3Transformer2DModel) and any(
            net == "uir" for net, _, _ in self.calls
        ):
            return None
        per_sample: dict[tuple, float] = {}
        parts: dict[str, float] = {}
        for net, grad, key in self.calls:
            if net == "uir":
                forward = mmdit_forward_flops(self.uir.backbone.config, *key).total
            elif key[0] == "body":
                seq_len, batch, past_len = key[1:]
                forward = llama_forward_flops(self.llm.config, seq_len, batch, past_len, lm_head_tokens=0).total
            elif key[0] == "lm_head":
                forward = 2.0 * key[1] * self.llm.lm_head.in_features * self.llm.lm_head.out_features
            else:
                name, signature, batch = key
                if (name, signature) not in per_sample:
                    per_sample[(name, signature)] = _one_sample_flops(self.adapters[name], signature)
                forward = batch * per_sample[(name, signature)]
            part = f"{net}_{'train' if grad else 'nograd'}"
            parts[part] = parts.get(part, 0.0) + (training_flops(forward) if grad else forward) / steps
        return parts


def _one_sample_flops(module: nn.Module, signature: tuple) -> float:
    """``FlopCounterMode`` FLOPs of ``module`` on one sample of all-ones inputs of ``signature``.

    Counted in train mode with gradients on (PyTorch's fused inference path of
    ``nn.TransformerEncoderLayer`` has no FLOP formula, and ``FlopCounterMode``'s module tracker
    rejects parameter views made under ``no_grad``) and with the math SDPA kernel (the CPU flash
    kernel has no formula either); only the forward runs.
    """
    weight = next(module.parameters())  # float inputs in the weights' dtype (autocast may have cast them)
    inputs = [torch.ones((1, *shape), dtype=weight.dtype if dtype.is_floating_point else dtype, device=weight.device)
              for shape, dtype in signature]
    was = module.training
    module.train()
    try:
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            module(*inputs)
    finally:
        module.train(was)
    return float(counter.get_total_flops())


# ----------------------------------------------------------------------------- setup
