"""Small helpers shared by test files (imported as ``from helpers import ...``)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module (scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses in the script look their module up
    spec.loader.exec_module(module)
    return module


def spy(monkeypatch, obj, name: str, calls: list) -> None:
    """Wrap ``obj.name`` so every call's ``(args, kwargs)`` is appended to ``calls``."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)


def tiny_latent_lqa(tiny_dir: pathlib.Path, max_new_tokens: int):
    """The tiny latent-path LQA (48-channel latents) in eval mode, its LoRA ``B`` drawn from
    ``N(0, 0.05)`` so the adapter changes the LLM's outputs (the prefix states included)."""
    import torch

    from rar.lqa.abstractor import Abstractor
    from rar.lqa.factory import build_depictqa
    from rar.lqa.image_adapter import LatentImageAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        parts = tiny_dir / "depictqa"
        adapter = LatentImageAdapter(48, 64, 16, width=64, nhead=4, dim_feedforward=128, encoder_layers=1,
                                     decoder_layers=1)
        model = build_depictqa(str(parts / "llm"), Abstractor(64, 16, 1, 4, 128), str(parts / "vision"), adapter,
                               max_new_tokens=max_new_tokens)
        with torch.no_grad():
            for name, param in model.llm.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.05)
    return model.eval()

