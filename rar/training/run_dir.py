"""What a training run folder holds, and the rules for starting, resuming or replacing one.

:func:`check_run_dir` only looks (every rank calls it before anything is built); the caller then
builds the stage, data, phases and optimizer, and only once they all exist calls
:func:`start_run_dir`, which is the first write. So a start that fails (bad learning rate, batch
size 0, a missing pretrained folder) leaves the folder as it was.

A folder *holds a run* once it has a checkpoint, exported weights or a completed phase; a folder
with only the ``config.yaml`` of a start that failed before its first checkpoint holds none and is
started over without ``overwrite``. ``overwrite=true`` deletes every artefact of the old run
(:data:`RUN_ARTEFACTS`) first, so no old checkpoint can be rotated against, or resumed in place
of, the new run's. Files the folder holds besides these (Hydra's ``.hydra/`` and log) are kept.
"""

from __future__ import annotations

import pathlib
import shutil

from rar.training import checkpoint as ckpt

RUN_ARTEFACTS = ("config.yaml", "meta.json", "metrics.jsonl", "checkpoints", "model", "validation", "wandb")
"""Everything the training loop writes into a run folder (deleted by ``overwrite``)."""


def holds_run(run_dir: pathlib.Path) -> bool:
    """Whether ``run_dir`` has anything a restart would lose: checkpoints, ``model/`` or a finished phase."""
    checkpoints = run_dir / "checkpoints"
    has_checkpoint = checkpoints.is_dir() and any(
        ckpt.latest_checkpoint(phase) is not None for phase in checkpoints.iterdir() if phase.is_dir()
    )
    return has_checkpoint or (run_dir / "model").is_dir() or bool(ckpt.read_meta(run_dir).get("phases_done"))


def check_run_dir(run_dir: pathlib.Path, stage: str, resume: bool, overwrite: bool) -> None:
    """Refuse a start that would mix two runs; writes nothing.

    Raises:
        ValueError: ``resume`` and ``overwrite`` together, ``run_dir`` is a file, or ``resume``
            of a run of another stage.
        FileExistsError: ``run_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    """
    if resume and overwrite:
        raise ValueError("resume=true and overwrite=true contradict each other; pass one of them")
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run_dir={run_dir} is a file; expected a folder for the run")
    if not holds_run(run_dir):
        return
    if not (resume or overwrite):
        raise FileExistsError(
            f"run directory {run_dir} already holds a run; pass resume=true to continue it, "
            "overwrite=true to delete it and start over, or another run_dir"
        )
    found = ckpt.read_meta(run_dir).get("stage")
    if resume and found is not None and found != stage:
        raise ValueError(f"resume=true: {run_dir} holds a run of stage {found!r}, not {stage!r}; "
                         "pass this stage's run directory")


def start_run_dir(run_dir: pathlib.Path, config_yaml: str, resume: bool, meta: dict) -> None:
    """Create ``run_dir`` (main process only), clear an old run unless resuming it, record the config.

    ``overwrite`` needs no flag here: :func:`check_run_dir` has let through only a folder that
    holds no run, one to resume, or one to overwrite, and all but the resumed one start empty.
    """
    if not (resume and holds_run(run_dir)):
        clear_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    staged = run_dir / "config.yaml.partial"
    staged.write_text(config_yaml)
    staged.replace(run_dir / "config.yaml")
    ckpt.write_meta(run_dir, **meta)


def clear_run(run_dir: pathlib.Path) -> None:
    """Delete the artefacts of a previous run (:data:`RUN_ARTEFACTS`) from ``run_dir``."""
    for name in RUN_ARTEFACTS:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
