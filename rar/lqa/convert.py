"""Convert DepictQA's released checkpoint to our LQA's ``init_from`` layout.

DepictQA saves only its trainable tensors (``DeepSpeedAgent.save_model``: ``torch.save`` of
``{name: tensor}`` over ``named_parameters()`` with ``requires_grad``), named after its
``DepictQA`` module: ``vision_proj.{weight,bias}``, ``abstractor.query_embeds``,
``abstractor.abstractor.layers.N.*`` and the peft LoRA tensors
``llm.base_model.model.model.layers.N.self_attn.{q,k,v,o}_proj.lora_{A,B}.default.weight``
(peft 0.3; older peft has no ``.default``). Our :class:`rar.lqa.model.DepictQA` uses the same
module names, so conversion normalises the LoRA names, casts to float32, and checks every key
and shape against the target model. The result is written as
``out_dir/model/lqa/weights.safetensors``: a later stage loads it with ``init_from=out_dir``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

_LORA_NO_ADAPTER = re.compile(r"\.(lora_[AB])\.weight$")
DEPICTQA_PARTS = ("vision_proj.", "abstractor.", "llm.")


def normalise_key(key: str) -> str:
    """DepictQA/peft key → ours: strip DeepSpeed/DDP ``module.``, add peft's ``.default`` adapter name."""
    key = key.removeprefix("module.")
    return _LORA_NO_ADAPTER.sub(r".\1.default.weight", key)


def convert_depictqa_state(state: dict[str, torch.Tensor], reference: nn.Module) -> dict[str, torch.Tensor]:
    """Rename, cast and validate DepictQA tensors against ``reference`` (our DepictQA, any device).

    Raises:
        KeyError: a tensor with no counterpart in ``reference``, or a LoRA/projector/abstractor
            tensor of ``reference`` missing from ``state`` (the message lists examples).
        ValueError: a shape mismatch (names the key and both shapes).
    """
    own = {k: v.shape for k, v in reference.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"checkpoint entry {key!r} is a {type(value).__name__}, expected a tensor")
        name = normalise_key(key)
        if name not in own:
            raise KeyError(f"checkpoint tensor {key!r} (as {name!r}) has no counterpart in {type(reference).__name__}")
        if tuple(own[name]) != tuple(value.shape):
            raise ValueError(f"shape mismatch for {name}: checkpoint {tuple(value.shape)} vs model {tuple(own[name])}")
        out[name] = value.detach().to(torch.float32).contiguous()
    expected = [k for k in own if k.startswith(("vision_proj.", "abstractor.")) or ".lora_" in k]
    missing = [k for k in expected if k not in out]
    if missing:
        raise KeyError(f"{len(missing)} DepictQA tensors missing from the checkpoint, e.g. {missing[:4]}")
    return out


def load_depictqa_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read DepictQA's ``ckpt.pt`` (a plain state dict, possibly under a ``"module"`` key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DepictQA checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "module" in state and isinstance(state["module"], dict):
        state = state["module"]
    if not isinstance(state, dict):
        raise TypeError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def write_init_dir(tensors: dict[str, torch.Tensor], out_dir: str | Path, source: str, child: str = "lqa") -> Path:
    """Write ``out_dir/model/<child>/weights.safetensors`` (+ ``meta.json``) for ``init_from``."""
    out_dir = Path(out_dir)
    target = out_dir / "model" / child / "weights.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target))
    (out_dir / "meta.json").write_text(json.dumps({"stage": "convert_depictqa", "source": source,
                                                   "tensors": len(tensors)}, indent=2))
    return target
