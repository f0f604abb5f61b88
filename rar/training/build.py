"""The one place in ``rar/`` that reads Hydra configs: turns a composed config into built objects.

Everything below this module takes typed arguments. A stage config names the model config groups
it needs (``stage.modules``); each is instantiated through its ``_target_`` and handed to the
stage's ``_partial_`` target by keyword.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib

import hydra
import torch
from accelerate import PartialState
from accelerate.utils import set_seed
from omegaconf import DictConfig, ListConfig, OmegaConf

from rar.training import checkpoint as ckpt
from rar.training.loop import OptimizerFactory, PhaseResult, TrainConfig, train
from rar.training.phases import Phase
from rar.training.run_dir import check_run_dir, start_run_dir
from rar.training.schedule import Schedule, check_warmup, resolve_schedule
from rar.training.stage import Stage

log = logging.getLogger(__name__)


def build_modules(cfg: DictConfig, names: list[str]) -> dict[str, torch.nn.Module]:
    """Instantiate the model config groups ``names`` (e.g. ``["autoencoder", "uir"]``)."""
    missing = [n for n in names if n not in cfg or cfg[n] is None]
    if missing:
        raise KeyError(f"stage {cfg.stage.name!r} needs config groups {missing}, which are not in the config")
    return {name: hydra.utils.instantiate(cfg[name], _convert_="all") for name in names}


def stage_target(cfg: DictConfig) -> DictConfig:
    """``stage.target``, with the schedule's ``target`` settings on top when ``paper_schedule`` is on."""
    if cfg.get("paper_schedule") and cfg.get("schedule") and cfg.schedule.get("target"):
        return OmegaConf.merge(cfg.stage.target, cfg.schedule.target)
    return cfg.stage.target


def init_dirs(cfg: DictConfig) -> list[pathlib.Path]:
    """``init_from`` as run directories: one path, or a list whose later runs win for a module they
    share (e.g. ``init_from=[runs/tiny/cond_align,runs/tiny/uir]``: the LQA side of one run, the
    UIR of another)."""
    init = cfg.get("init_from")
    if not init:
        return []
    runs = init if isinstance(init, (ListConfig, list, tuple)) else [init]
    return [pathlib.Path(str(run)) for run in runs]


def check_init_autoencoder(cfg: DictConfig) -> None:
    """Refuse ``init_from`` a run that encoded with another autoencoder: its weights live in that
    run's latent space (e.g. a tiny stage started without ``autoencoder.pretrained=`` of the
    trained ``stage=autoencoder`` run)."""
    if "autoencoder" not in cfg:
        return
    keys = ("_target_", "pretrained", "subfolder", "factor")
    now = OmegaConf.to_container(cfg.autoencoder, resolve=True)
    for init in init_dirs(cfg):
        config_file = init / "config.yaml"
        before = OmegaConf.load(config_file).get("autoencoder") if config_file.is_file() else None
        if before is None:
            continue
        before = OmegaConf.to_container(before, resolve=True)
        differ = {k: (before.get(k), now.get(k)) for k in keys if before.get(k) != now.get(k)}
        if differ:
            detail = ", ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in differ.items())
            hint = f"; pass autoencoder.pretrained={before['pretrained']}" if "pretrained" in differ else ""
            raise ValueError(f"init_from={init} was trained on another autoencoder ({detail}): its weights live in "
                             f"that latent space{hint}")


def build_stage(cfg: DictConfig) -> tuple[Stage, set[str]]:
    """Build the stage with its modules; load ``init_from`` on top (each run in order). Returns
    (stage, loaded keys)."""
    check_init_autoencoder(cfg)
    modules = build_modules(cfg, list(cfg.stage.modules))
    stage = hydra.utils.instantiate(stage_target(cfg), _convert_="all")(**modules)
    if not isinstance(stage, Stage):
        raise TypeError(f"stage.target built a {type(stage).__name__}, expected a rar.training.stage.Stage")
    loaded: set[str] = set()
    for init in init_dirs(cfg):
        keys = ckpt.load_init(stage, init)
        log.info("loaded %d tensors from init_from=%s", len(keys), init)
        loaded |= keys
    return stage, loaded


def build_phases(cfg: DictConfig) -> list[Phase]:
    if not cfg.get("phases"):
        raise ValueError(f"stage {cfg.stage.name!r} defines no phases")
    return [
        Phase(name=p.name, max_steps=int(p.max_steps), trainable=tuple(p.trainable), lr=p.get("lr"))
        for p in cfg.phases
    ]


def build_schedule(cfg: DictConfig, phases: list[Phase], config: TrainConfig, dataset_size: int,
                   processes: int) -> tuple[list[Phase], TrainConfig]:
    """With ``paper_schedule: true``, derive steps, warmup and accumulation from the stage's
    ``schedule:`` block (:mod:`rar.training.schedule`); otherwise keep the phases' ``max_steps``.
    Either way every warmup must be shorter than its phase."""
    if cfg.get("paper_schedule"):
        if not cfg.get("schedule"):
            raise ValueError(f"paper_schedule=true but stage {cfg.stage.name!r} has no schedule: block")
        block = cfg.schedule
        schedule = Schedule(epochs=tuple(float(e) for e in block.epochs), global_batch=int(block.global_batch),
                            lr_scheduler=str(block.lr_scheduler), warmup_ratio=float(block.warmup_ratio))
        resolved = resolve_schedule(schedule, phases, dataset_size, config.batch_size, processes)
        phases = list(resolved.phases)
        config = dataclasses.replace(config, gradient_accumulation_steps=resolved.gradient_accumulation_steps,
                                     lr_scheduler=resolved.lr_scheduler)
    check_warmup(phases, config.warmup_steps)
    return phases, config


def run_training(cfg: DictConfig) -> list[PhaseResult]:
    """Build everything a training stage needs from ``cfg``, then start the run folder and run the loop.

    Nothing is written before the stage, data, phases, loop settings and optimizer all exist
    (:mod:`rar.training.run_dir`): a bad setting fails with the folder untouched.
    """
    if cfg.get("logger") and cfg.logger.get("wandb_mode"):
        os.environ.setdefault("WANDB_MODE", cfg.logger.wandb_mode)
    run_dir = pathlib.Path(cfg.run_dir)
    # the first PartialState fixes the process group: CPU ranks (gloo) when there is no GPU
    state = PartialState(cpu=not torch.cuda.is_available())
    check_run_dir(run_dir, cfg.stage.name, resume=bool(cfg.resume), overwrite=bool(cfg.overwrite))
    config = TrainConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))
    phases = build_phases(cfg)
    optimizer = hydra.utils.instantiate(cfg.optimizer, _convert_="all")
    set_seed(int(cfg.trainer.seed))  # randomly initialised modules are reproducible too
    stage, loaded = build_stage(cfg)
    dataset = hydra.utils.instantiate(cfg.data.dataset, _convert_="all")
    phases, config = build_schedule(cfg, phases, config, len(dataset), state.num_processes)
    check_optimizer(optimizer, phases)
    state.wait_for_everyone()  # every rank has looked at the folder before the main one writes
    if state.is_main_process:
        start_run_dir(run_dir, OmegaConf.to_yaml(cfg, resolve=True), resume=bool(cfg.resume),
                      meta={"git_sha": ckpt.git_sha(), "stage": cfg.stage.name,
                            "init_from": [str(run) for run in init_dirs(cfg)]})
    state.wait_for_everyone()
    results = train(
        stage=stage,
        dataset=dataset,
        phases=phases,
        optimizer=optimizer,
        config=config,
        run_dir=run_dir,
        resume=bool(cfg.resume),
        loaded_keys=loaded,
        collate_fn=getattr(dataset, "collate", None),
        tracker_config=OmegaConf.to_container(cfg, resolve=True),
    )
    for r in results:
        log.info("phase %s: %d steps in %.1fs, final loss %s%s", r.name, r.steps, r.seconds,
                 f"{r.losses[-1]:.5f}" if r.losses else "n/a", " (interrupted)" if r.interrupted else "")
    return results


def check_optimizer(optimizer: OptimizerFactory, phases: list[Phase]) -> None:
    """Build the optimizer once per phase on a stand-in parameter, so a bad setting (``lr=-1``)
    fails before the run folder is touched, with the phase named."""
    for phase in phases:
        kwargs = {} if phase.lr is None else {"lr": phase.lr}
        try:
            optimizer([torch.nn.Parameter(torch.zeros(1))], **kwargs)
        except (ValueError, TypeError) as error:
            raise ValueError(f"phase {phase.name!r}: the optimizer rejects its settings: {error}") from error
