"""The shared training loop on a toy stage: learning, phases, checkpoints, resume, SIGTERM, DDP."""

from __future__ import annotations

import functools
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from rar.training import checkpoint as ckpt
from rar.training.loop import TrainConfig, train
from rar.training.phases import Phase
from rar.training.stage import Stage, StepOutput


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 1.0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class ToyStage(Stage):
    """y = head(body(x)); a frozen 'backbone' buffer-free module checks frozen weights are untouched."""

    def __init__(self, sigterm_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.body = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 1)
        self.frozen = torch.nn.Linear(1, 1)
        self.calls, self.sigterm_at = 0, sigterm_at

    def forward(self, batch) -> StepOutput:
        self.calls += 1
        if self.sigterm_at is not None and self.calls == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        noise = torch.randn(batch["x"].shape[0]) * 1e-3  # consumes the global RNG like timestep sampling does
        pred = self.head(torch.relu(self.body(batch["x"]))).squeeze(-1) + self.frozen.bias * 0
        loss = torch.nn.functional.mse_loss(pred + noise, batch["y"])
        return StepOutput(loss, {"mse": loss.item()})


OPT = functools.partial(torch.optim.AdamW, lr=1e-2)
CFG = dict(batch_size=8, log_every=1, checkpoint_every=1000, progress=False)


def run(tmp_path, stage, phases, resume=False, **cfg):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return train(stage, ToyData(), phases, OPT, TrainConfig(**(CFG | cfg)), tmp_path, resume=resume)


def test_loss_falls_and_run_dir_is_complete(tmp_path):
    stage = ToyStage()
    frozen_before = stage.frozen.weight.clone()
    (res,) = run(tmp_path, stage, [Phase("main", 60, ("body.*", "head.*"))])
    assert res.steps == 60 and len(res.losses) == 60
    assert res.losses[-1] < res.losses[0] / 2
    assert torch.equal(stage.frozen.weight, frozen_before)
    exported = set(load_file(tmp_path / "model" / "body" / ckpt.WEIGHTS_NAME))
    assert exported == {"weight", "bias"}
    assert not (tmp_path / "model" / "frozen").exists()  # frozen modules are never copied
    assert set(load_file(tmp_path / "checkpoints/main/step_0000060" / ckpt.TRAINABLE_NAME)) == {
        "body.weight", "body.bias", "head.weight", "head.bias"}
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 60 and "mse" in lines[-1]
    assert ckpt.read_meta(tmp_path)["phases_done"] == ["main"]


def test_phases_train_only_their_parameters(tmp_path):
    stage = ToyStage()
    body0, head0 = stage.body.weight.clone(), stage.head.weight.clone()
    res = run(tmp_path, stage, [Phase("head_only", 5, ("head.*",)), Phase("all", 5, ("body.*", "head.*"), lr=1e-3)])
    assert [r.name for r in res] == ["head_only", "all"]
    assert not torch.equal(stage.head.weight, head0) and not torch.equal(stage.body.weight, body0)
    stage2 = ToyStage()
    run(tmp_path / "b", stage2, [Phase("head_only", 5, ("head.*",))])
    assert torch.equal(stage2.body.weight, body0)


def test_sigterm_checkpoints_and_resume_matches_uninterrupted(tmp_path):
    phases = [Phase("main", 12, ("body.*", "head.*"))]
    (full,) = run(tmp_path / "full", ToyStage(), phases, gradient_accumulation_steps=2)
    (cut,) = run(tmp_path / "cut", ToyStage(sigterm_at=9), phases, gradient_accumulation_steps=2)
    assert cut.interrupted and cut.steps == 5  # SIGTERM during micro-batch 9 → checkpoint after step 5
    assert ckpt.latest_checkpoint(tmp_path / "cut/checkpoints/main")[1] == 5
    assert not (tmp_path / "cut" / "model").exists()
    (rest,) = run(tmp_path / "cut", ToyStage(), phases, resume=True, gradient_accumulation_steps=2)
    assert rest.steps == 12
    assert rest.losses[0] == pytest.approx(full.losses[5], rel=1e-6, abs=1e-7)
    assert rest.losses[-1] == pytest.approx(full.losses[-1], rel=1e-5)


def test_init_from_loads_previous_export(tmp_path):
    first = ToyStage()
    run(tmp_path / "a", first, [Phase("main", 5, ("body.*",))])
    second = ToyStage()
    loaded = ckpt.load_init(second, tmp_path / "a")
    assert loaded == {"body.weight", "body.bias"}
    assert torch.equal(second.body.weight, first.body.weight)
    with pytest.raises(FileNotFoundError, match="model/"):
        ckpt.load_init(second, tmp_path / "nowhere")


def test_bad_trainable_pattern_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="matches no parameter.*top-level modules"):
        run(tmp_path, ToyStage(), [Phase("main", 1, ("uir.*",))])


def _ddp_worker(tmp):
    import pathlib

    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)  # forked from a parent that used a 1-process state
    stage = ToyStage()
    train(stage, ToyData(), [Phase("main", 4, ("body.*", "head.*"))], OPT,
          TrainConfig(**CFG), pathlib.Path(tmp))
    flat = torch.cat([p.detach().flatten() for p in stage.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(2)]
    torch.distributed.all_gather(gathered, flat)
    assert PartialState().num_processes == 2
    assert torch.equal(gathered[0], gathered[1])


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    from accelerate import debug_launcher

    debug_launcher(functools.partial(_ddp_worker, str(tmp_path)), num_processes=2)
    assert (tmp_path / "model" / "head" / ckpt.WEIGHTS_NAME).is_file()
