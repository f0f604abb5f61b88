"""The one shared Accelerate training loop; every stage runs through :func:`train`.

Per phase: freeze all but the phase's parameters, build a fresh optimizer and LR schedule,
``accelerator.prepare`` the stage, then ``accumulate`` → ``backward`` → clip on ``sync_gradients``
→ step. ``global_step`` counts optimizer steps. Checkpoints hold only trainable tensors (plus
optimizer, scheduler, RNG and EMA state); at the end of each phase the run's weights are exported
to ``run_dir/model`` for the next stage. SIGTERM (SLURM pre-emption) checkpoints before exit.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    set_seed,
)
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from rar.core.compile import compile_repeated_blocks
from rar.core.tensor_files import read_tensors, save_tensors
from rar.training import checkpoint as ckpt
from rar.training.phases import Phase, matching_parameters, set_trainable
from rar.training.stage import Stage, StepOutput

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]


@dataclass
class TrainConfig:
    """Loop settings shared by every stage (the ``trainer:`` block of ``configs/train.yaml``)."""

    seed: int = 0
    batch_size: int = 8
    num_workers: int = 0
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"
    max_grad_norm: float | None = 1.0
    lr_scheduler: str = "constant_with_warmup"  # any diffusers.optimization.get_scheduler name
    warmup_steps: int = 0
    ema_decay: float | None = None
    log_every: int = 10
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = 2
    validate_every: int | None = None
    log_with: Sequence[str] = ()
    tracker_project: str = "rar"
    find_unused_parameters: bool = False
    progress: bool = True
    compile_blocks: bool = False  # regional torch.compile of the transformer blocks (rar/core/compile.py)

    def __post_init__(self) -> None:
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        if self.gradient_accumulation_steps < 1 or self.batch_size < 1:
            raise ValueError(f"trainer.batch_size and trainer.gradient_accumulation_steps must be >= 1, got "
                             f"{self.batch_size} and {self.gradient_accumulation_steps}")


@dataclass
class PhaseResult:
    """Outcome of one phase. ``losses`` holds the per-step loss (mean over accumulation and ranks)."""

    name: str
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False


class _Preemption:
    """Turns SIGTERM into a flag the loop checks after each optimizer step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_Preemption":
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. debug_launcher): no handler
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        log.warning("SIGTERM received: checkpointing after the current step")
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _register_checkpointing(accelerator: Accelerator, trainable: list[str], extra: dict) -> list:
    """Make ``save_state`` write only trainable tensors (frozen backbones are rebuilt, not saved).

    ``extra`` maps names to objects with ``state_dict``/``load_state_dict`` (LR schedule, EMA)
    saved beside them. Returns the hook handles; remove them when the phase ends.
    """
    keys = set(trainable)

    def save_hook(models, weights, output_dir):
        out = pathlib.Path(output_dir)
        if accelerator.is_main_process:
            save_tensors(ckpt.select_state(accelerator.unwrap_model(models[0]), keys), out / ckpt.TRAINABLE_NAME)
            torch.save({k: v.state_dict() for k, v in extra.items()}, out / ckpt.PHASE_STATE_NAME)
        weights.clear()

    def load_hook(models, input_dir):
        path = pathlib.Path(input_dir) / ckpt.TRAINABLE_NAME
        state = read_tensors(path)
        missing = sorted(keys - set(state))
        if missing:
            raise ValueError(f"{path}: lacks {len(missing)} of this phase's {len(keys)} trainable tensors "
                             f"(e.g. {missing[:3]}); it was written by another run or phase layout")
        ckpt.load_into(accelerator.unwrap_model(models[0]), state, path)
        states = torch.load(path.parent / ckpt.PHASE_STATE_NAME, weights_only=True)
        for k, v in extra.items():
            v.load_state_dict(states[k])
        models.clear()

    return [accelerator.register_save_state_pre_hook(save_hook), accelerator.register_load_state_pre_hook(load_hook)]


class _JsonlLogger:
    def __init__(self, path: pathlib.Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def train(
    stage: Stage,
    dataset: torch.utils.data.Dataset,
    phases: Sequence[Phase],
    optimizer: OptimizerFactory,
    config: TrainConfig,
    run_dir: pathlib.Path,
    resume: bool = False,
    loaded_keys: set[str] | None = None,
    collate_fn: Callable | None = None,
    tracker_config: dict | None = None,
) -> list[PhaseResult]:
    """Train ``stage`` through ``phases`` and export its weights to ``run_dir/model``.

    Args:
        stage: the built stage (modules already loaded from ``init_from`` if any).
        dataset: map-style dataset; ``set_epoch(epoch)`` is called if it has one.
        phases: run in order; a phase recorded as done in ``meta.json`` is skipped on resume.
        optimizer: ``_partial_`` optimizer factory called with the trainable parameters (and ``lr``).
        config: loop settings.
        run_dir: the run directory (must exist; the caller wrote ``config.yaml`` there).
        resume: continue from the latest checkpoint of the first unfinished phase.
        loaded_keys: stage-relative tensor names loaded from ``init_from`` (exported again).
        collate_fn: DataLoader collate function.
        tracker_config: flat config logged to trackers (wandb).
    """
    set_seed(config.seed)
    if config.compile_blocks:
        compile_repeated_blocks(stage)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=list(config.log_with) or None,
        project_dir=str(run_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)],
    )
    if config.log_with:
        accelerator.init_trackers(config.tracker_project, config=tracker_config or {},
                                  init_kwargs={"wandb": {"dir": str(run_dir), "name": run_dir.name}})
    metrics = _JsonlLogger(run_dir / "metrics.jsonl", accelerator.is_main_process)
    exported = set(loaded_keys or ())
    done = set(ckpt.read_meta(run_dir).get("phases_done", [])) if resume else set()
    results = []
    with _Preemption() as preemption:
        for phase in phases:
            trainable = matching_parameters(stage, phase.trainable)
            exported.update(trainable)
            if phase.name in done:
                log.info("phase %s already done; loading its exported weights", phase.name)
                ckpt.load_init(stage, run_dir)
                continue
            result = _run_phase(accelerator, stage, dataset, phase, trainable, optimizer, config,
                                run_dir, resume, collate_fn, metrics, preemption)
            results.append(result)
            if result.interrupted:
                break
            if accelerator.is_main_process:
                ckpt.export_model(stage, run_dir, exported)
                stage.export(run_dir / "model", dataset)
                ckpt.write_meta(run_dir, phases_done=sorted(done | {phase.name}))
            done.add(phase.name)
            accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def _run_phase(accelerator, stage, dataset, phase, trainable, optimizer_factory, config, run_dir,
               resume, collate_fn, metrics, preemption) -> PhaseResult:
    params = set_trainable(stage, trainable)
    kwargs = {} if phase.lr is None else {"lr": phase.lr}
    optimizer = optimizer_factory(params, **kwargs)
    warmup = config.warmup_steps if phase.warmup_steps is None else phase.warmup_steps
    lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=warmup,
                                 num_training_steps=max(phase.max_steps, 1))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, shuffle=True, drop_last=len(dataset) >= config.batch_size,
        num_workers=config.num_workers, collate_fn=collate_fn, persistent_workers=False,
        # its own generator: creating an iterator must not consume the global RNG, or a resumed
        # run (which creates one mid-epoch) would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(config.seed),
    )
    model, optimizer, loader = accelerator.prepare(stage, optimizer, loader)
    ema = EMAModel(params, decay=config.ema_decay) if config.ema_decay is not None else None
    extra = {"lr_scheduler": lr_scheduler} | ({"ema": ema} if ema is not None else {})
    hooks = _register_checkpointing(accelerator, trainable, extra)

    phase_dir = run_dir / "checkpoints" / phase.name
    latest = _resume(accelerator, phase_dir) if resume else None
    global_step = 0 if latest is None else latest[1]

    if len(loader) == 0:
        raise ValueError(f"dataset of {len(dataset)} samples gives no batch of size {config.batch_size}")
    micro_per_epoch = len(loader)
    micro_done = global_step * config.gradient_accumulation_steps
    epoch, skip = divmod(micro_done, micro_per_epoch)
    result = PhaseResult(phase.name, global_step)
    bar = tqdm(total=phase.max_steps, initial=global_step, desc=f"{phase.name}",
               disable=not (accelerator.is_main_process and config.progress))
    start = time.perf_counter()
    running: list[float] = []
    while global_step < phase.max_steps:
        loader.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        skip = 0
        for batch in batches:
            with accelerator.accumulate(model):
                out: StepOutput = model(batch)
                if not torch.isfinite(out.loss):
                    raise FloatingPointError(f"non-finite loss {out.loss.item()} at step {global_step} of phase {phase.name}")
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and config.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            running.append(out.loss.detach().float())
            if not accelerator.sync_gradients:
                continue
            if not accelerator.optimizer_step_was_skipped:
                lr_scheduler.step()
            if ema is not None:
                ema.step(params)
            global_step += 1
            loss = accelerator.reduce(torch.stack(running).mean(), reduction="mean").item()
            running = []
            result.losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if global_step % config.log_every == 0 or global_step == phase.max_steps:
                record = {"phase": phase.name, "step": global_step, "loss": loss,
                          "lr": lr_scheduler.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 2),
                          **out.logs}
                metrics.write(record)
                accelerator.log({f"{phase.name}/{k}": v for k, v in record.items() if k != "phase"}, step=global_step)
            stop = _preempted(accelerator, preemption)
            if global_step % config.checkpoint_every == 0 or stop:
                _save(accelerator, phase_dir, global_step, config)
            if config.validate_every and global_step % config.validate_every == 0:
                _validate(accelerator, model, ema, params, run_dir, global_step, metrics, phase.name)
            if stop:
                result.interrupted = True
                break
            if global_step >= phase.max_steps:
                break
        if result.interrupted:
            break
        epoch += 1
    bar.close()
    result.steps, result.seconds = global_step, time.perf_counter() - start
    if not result.interrupted:
        if latest is None or latest[1] != global_step:
            _save(accelerator, phase_dir, global_step, config)
        if ema is not None:
            ema.copy_to(params)  # the exported weights are the EMA weights
    for handle in hooks:
        handle.remove()
    accelerator.free_memory()
    return result


def _resume(accelerator: Accelerator, phase_dir: pathlib.Path) -> tuple[pathlib.Path, int] | None:
    """Load the newest checkpoint of the phase that loads whole; returns it and its step, or None
    if the phase has none. An incomplete or corrupt one (missing RNG state, truncated tensors) is
    reported and the previous one is tried; all ranks must load the same one."""
    failures = []
    for step, path in ckpt.checkpoints_newest_first(phase_dir):
        missing = ckpt.missing_checkpoint_files(path, accelerator.process_index)
        problem = f"lacks {missing}" if missing else None
        if problem is None:
            try:
                accelerator.load_state(str(path))
            except Exception as error:  # truncated/foreign files surface as many error types
                problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        failed = torch.tensor(float(problem is not None), device=accelerator.device)
        if accelerator.reduce(failed, reduction="sum").item() == 0:
            log.info("resumed phase %s from %s", phase_dir.name, path)
            return path, step
        failures.append(f"{path.name}: {problem or 'failed on another rank'}")
        log.warning("cannot resume from %s (%s); trying the previous checkpoint", path, problem or "another rank failed")
    if failures:
        raise ValueError(f"resume=true: no checkpoint in {phase_dir} loads: {'; '.join(failures)}")
    return None


def _preempted(accelerator: Accelerator, preemption: _Preemption) -> bool:
    flag = torch.tensor(float(preemption.requested), device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


def _save(accelerator: Accelerator, phase_dir: pathlib.Path, step: int, config: TrainConfig) -> None:
    accelerator.save_state(str(ckpt.step_dir(phase_dir, step)))
    if accelerator.is_main_process:
        ckpt.rotate_checkpoints(phase_dir, config.checkpoints_total_limit)
    accelerator.wait_for_everyone()


def _validate(accelerator, model, ema, params, run_dir, step, metrics, phase_name) -> None:
    if accelerator.is_main_process:
        if ema is not None:
            ema.store(params)
            ema.copy_to(params)
        stage = accelerator.unwrap_model(model)
        was_training = stage.training
        stage.eval()
        values = stage.validate(run_dir / "validation" / f"step_{step:07d}", step)
        stage.train(was_training)
        if ema is not None:
            ema.restore(params)
        if values:
            metrics.write({"phase": phase_name, "step": step, **{f"val/{k}": v for k, v in values.items()}})
            accelerator.log({f"val/{k}": v for k, v in values.items()}, step=step)
    accelerator.wait_for_everyone()


def steps_per_epoch(num_samples: int, batch_size: int, accumulation: int) -> int:
    """Optimizer steps in one pass over ``num_samples`` (single process, drop_last)."""
    return max(1, math.floor(num_samples / batch_size) // accumulation)
