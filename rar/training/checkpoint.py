"""Checkpoint and hand-off files of a run directory.

Layout written by the loop (only the main process writes)::

    run_dir/
      config.yaml                       resolved config of this run
      meta.json                         git SHA, stage, phases completed
      metrics.jsonl                     one JSON line per logged step
      checkpoints/<phase>/step_0000100/ accelerator.save_state + trainable.safetensors
      model/<child>/weights.safetensors hand-off weights per top-level child module

``model/`` holds, for each child of the stage, the tensors this run changed: parameters that were
trainable in any phase plus whatever was loaded from ``init_from``. Frozen pretrained backbones are
never copied; the next stage rebuilds them from its config and loads this delta on top.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess

import torch

from rar.core.tensor_files import read_tensors, save_tensors

WEIGHTS_NAME = "weights.safetensors"
TRAINABLE_NAME = "trainable.safetensors"
PHASE_STATE_NAME = "phase_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{7})$")


def select_state(module: torch.nn.Module, keys: set[str]) -> dict[str, torch.Tensor]:
    """The entries of ``module.state_dict()`` whose names are in ``keys``."""
    return {k: v for k, v in module.state_dict().items() if k in keys}


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: pathlib.Path) -> None:
    """Copy ``state`` into ``module``; every key must exist with the same shape."""
    own = module.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise KeyError(f"{source}: {len(unknown)} tensors do not exist in {type(module).__name__}: {unknown[:5]}")
    bad = [k for k, v in state.items() if own[k].shape != v.shape]
    if bad:
        k = bad[0]
        raise ValueError(f"{source}: shape mismatch for {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
    module.load_state_dict(state, strict=False)


def export_model(stage: torch.nn.Module, run_dir: pathlib.Path, keys: set[str]) -> None:
    """Write ``run_dir/model/<child>/weights.safetensors`` for every child owning any of ``keys``."""
    for child_name, child in stage.named_children():
        prefix = child_name + "."
        child_keys = {k[len(prefix):] for k in keys if k.startswith(prefix)}
        if child_keys:
            save_tensors(select_state(child, child_keys), run_dir / "model" / child_name / WEIGHTS_NAME)


def load_init(stage: torch.nn.Module, init_dir: pathlib.Path) -> set[str]:
    """Load ``init_dir/model/<child>/weights.safetensors`` into the children of the same name.

    Returns the stage-relative names loaded. Children without a file keep their built weights;
    a file for a child this stage does not have is ignored (stages use different module sets),
    but a folder with no file for any child of this stage is an error (a run of an unrelated
    stage would otherwise load nothing and train from the built weights).
    """
    model_dir = init_dir / "model"
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"init_from={init_dir} has no model/ folder; expected the run directory of a finished "
            "previous stage (containing model/<module>/weights.safetensors)"
        )
    loaded: set[str] = set()
    for child_name, child in stage.named_children():
        path = model_dir / child_name / WEIGHTS_NAME
        if path.is_file():
            state = read_tensors(path)
            load_into(child, state, path)
            loaded.update(f"{child_name}.{k}" for k in state)
    if not loaded:
        held = sorted(p.parent.name for p in model_dir.glob(f"*/{WEIGHTS_NAME}"))
        found = read_meta(init_dir).get("stage")
        raise ValueError(
            f"init_from={init_dir}{f' (a {found!r} run)' if found else ''} holds weights for {held}, none of this "
            f"stage's modules {[name for name, _ in stage.named_children()]}; expected the run directory of the "
            "stage before this one"
        )
    return loaded


def step_dir(phase_dir: pathlib.Path, step: int) -> pathlib.Path:
    return phase_dir / f"step_{step:07d}"


def latest_checkpoint(phase_dir: pathlib.Path) -> tuple[pathlib.Path, int] | None:
    """The newest complete checkpoint of a phase and its step, or None."""
    if not phase_dir.is_dir():
        return None
    found = []
    for d in phase_dir.iterdir():
        m = _STEP_DIR.match(d.name)
        if m and (d / TRAINABLE_NAME).is_file():
            found.append((int(m.group(1)), d))
    if not found:
        return None
    step, path = max(found)
    return path, step


def checkpoints_newest_first(phase_dir: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """Every ``step_*`` folder of a phase, complete or not, newest first."""
    if not phase_dir.is_dir():
        return []
    found = [(int(m.group(1)), d) for d in phase_dir.iterdir() if (m := _STEP_DIR.match(d.name)) and d.is_dir()]
    return sorted(found, reverse=True)


def missing_checkpoint_files(path: pathlib.Path, process_index: int) -> list[str]:
    """The files a resume needs that ``path`` lacks: trainable tensors, LR/EMA state, the optimizer
    (``accelerator.save_state``'s ``optimizer.bin``) and this rank's RNG state."""
    needed = (TRAINABLE_NAME, PHASE_STATE_NAME, "optimizer.bin", f"random_states_{process_index}.pkl")
    return [name for name in needed if not (path / name).is_file()]


def rotate_checkpoints(phase_dir: pathlib.Path, keep: int | None) -> None:
    """Delete the oldest checkpoints of a phase so that at most ``keep`` remain."""
    if keep is None:
        return
    steps = sorted(d for d in phase_dir.iterdir() if _STEP_DIR.match(d.name))
    for old in steps[: max(0, len(steps) - keep)]:
        for f in sorted(old.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        old.rmdir()


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=pathlib.Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_meta(run_dir: pathlib.Path) -> dict:
    path = run_dir / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_meta(run_dir: pathlib.Path, **fields) -> None:
    meta = read_meta(run_dir) | fields
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
