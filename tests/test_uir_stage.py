"""The `uir` training stage through the shared loop: overfitting, checkpoints, resume, ablations."""

from __future__ import annotations

import functools
import json
import os
import signal
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file

from rar.conditioning.sd3_text import build_sd3_text_conditioner
from rar.conditioning.sources import ConditionInputs, TextCondition, ZeroCondition
from rar.testing import build_tiny_autoencoder, save_tiny_sd3_text_encoders
from rar.training import checkpoint as ckpt
from rar.training.loop import TrainConfig, train
from rar.training.phases import Phase
from rar.training.stages.uir import UIRStage, psnr
from rar.uir.autoencoders import SpaceToDepthAutoencoder
from rar.uir.backbones import build_sd3_transformer
from rar.uir.flow import NoisyConditionalPath
from rar.uir.round import restore_round


@dataclass
class Pair:
    lq: torch.Tensor
    hq: torch.Tensor
    labels: list[str]


@dataclass
class PairBatch:
    lq: torch.Tensor
    hq: torch.Tensor
    labels: list[list[str]]


class FixedPairs(torch.utils.data.Dataset):
    """Smooth random 16x16 images, darkened ("dark") or hazed ("haze"): a fixed, learnable mapping."""

    def __init__(self, n: int = 8, size: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        hq = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bilinear")
        dark = torch.arange(n) % 2 == 0
        lq = torch.where(dark.view(-1, 1, 1, 1), hq * 0.4, 0.5 * hq + 0.5 * 0.8)
        self.items = [Pair(lq[i], hq[i], ["dark"] if dark[i] else ["haze"]) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Pair:
        return self.items[i]

    @staticmethod
    def collate(items: list[Pair]) -> PairBatch:
        return PairBatch(torch.stack([p.lq for p in items]), torch.stack([p.hq for p in items]),
                         [p.labels for p in items])


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return str(save_tiny_sd3_text_encoders(tmp_path_factory.mktemp("sd3_text")))


class SigtermUIRStage(UIRStage):
    """Sends itself SIGTERM during forward call ``sigterm_at`` (simulated pre-emption)."""

    def __init__(self, *args, sigterm_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.sigterm_at = 0, sigterm_at

    def forward(self, batch):
        self.calls += 1
        if self.calls == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().forward(batch)


def make_stage(text_dir: str | None, cls=UIRStage, noisy: bool = False, **kwargs) -> UIRStage:
    torch.manual_seed(0)
    uir = build_sd3_transformer(config="tiny", concat_lq=noisy)
    extra = {}
    if text_dir is None:
        condition = ZeroCondition(seq_len=8)
    else:
        condition = TextCondition(describe=", ".join)
        extra["conditioner"] = build_sd3_text_conditioner(text_dir, t5_max_length=16)
    path = NoisyConditionalPath() if noisy else None
    return cls(build_tiny_autoencoder(), uir, condition, path=path, **extra, **kwargs)


OPT = functools.partial(torch.optim.AdamW, lr=1e-3)
CFG = dict(batch_size=8, log_every=1, checkpoint_every=1000, progress=False, max_grad_norm=1.0)


def run(run_dir, stage, steps, resume=False, **cfg):
    run_dir.mkdir(parents=True, exist_ok=True)
    data = FixedPairs()
    return train(stage, data, [Phase("main", steps, ("uir.*",))], OPT, TrainConfig(**(CFG | cfg)), run_dir,
                 resume=resume, collate_fn=data.collate)


def test_overfits_a_fixed_batch_and_exports_only_the_uir(tmp_path, text_dir):
    stage = make_stage(text_dir, timestep_sampling="uniform")
    frozen = {k: v.clone() for k, v in stage.conditioner.state_dict().items()}
    (res,) = run(tmp_path, stage, 60)
    first, last = sum(res.losses[:5]) / 5, sum(res.losses[-5:]) / 5
    print(f"uir stage: loss {first:.4f} -> {last:.4f} in 60 steps, {res.seconds / 60 * 1000:.0f} ms/step")
    assert last < first / 5
    assert all(torch.equal(v, stage.conditioner.state_dict()[k]) for k, v in frozen.items())
    assert (tmp_path / "checkpoints/main/step_0000060" / ckpt.TRAINABLE_NAME).is_file()
    exported = load_file(tmp_path / "model/uir" / ckpt.WEIGHTS_NAME)
    assert set(exported) == {k for k, _ in stage.uir.named_parameters()}
    assert not (tmp_path / "model/conditioner").exists() and not (tmp_path / "model/autoencoder").exists()
    # the hand-off reloads into a freshly built stage
    fresh = make_stage(text_dir)
    ckpt.load_init(fresh, tmp_path)
    assert torch.equal(fresh.uir.backbone.proj_out.weight, stage.uir.backbone.proj_out.weight)


def test_resume_after_preemption_matches_an_uninterrupted_run(tmp_path, text_dir):
    k, total = 4, 7
    (full,) = run(tmp_path / "full", make_stage(text_dir), total)
    (cut,) = run(tmp_path / "cut", make_stage(text_dir, SigtermUIRStage, sigterm_at=k), total)
    assert cut.interrupted and cut.steps == k
    assert (tmp_path / f"cut/checkpoints/main/step_{k:07d}").is_dir()
    (resumed,) = run(tmp_path / "cut", make_stage(text_dir), total, resume=True)
    assert resumed.steps == total and len(resumed.losses) == total - k
    assert cut.losses == pytest.approx(full.losses[:k], rel=1e-6)
    assert resumed.losses[0] == pytest.approx(full.losses[k], rel=1e-5)
    assert resumed.losses == pytest.approx(full.losses[k:], rel=1e-4)


def test_unconditioned_noisy_ablation_trains_only_the_uir(text_dir):
    stage = make_stage(None, noisy=True, loss_weighting="cosmap")
    batch = FixedPairs.collate(FixedPairs().items[:4])
    out = stage(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.loss > 0
    assert stage.uir.backbone.pos_embed.proj.weight.grad is not None
    assert stage.uir.backbone.pos_embed.proj.weight.shape[1] == 32


def test_validate_writes_a_grid_and_returns_psnr(tmp_path, text_dir):
    data = FixedPairs()
    stage = make_stage(text_dir, val_dataset=data, val_samples=3, val_steps=2)
    values = stage.validate(tmp_path / "val", step=10)
    assert (tmp_path / "val/restored.png").is_file()
    expected_input = psnr(torch.stack([data[i].lq for i in range(3)]), torch.stack([data[i].hq for i in range(3)]))
    assert values["psnr_input"] == pytest.approx(expected_input.mean().item(), rel=1e-5)
    assert set(values) == {"psnr", "psnr_input"} and values["psnr"] > 0
    assert make_stage(text_dir).validate(tmp_path / "none", step=1) == {}


def test_stage_checks_its_parts(text_dir):
    uir = build_sd3_transformer(config="tiny")
    with pytest.raises(ValueError, match=r"needs stage modules \['conditioner'\]"):
        UIRStage(build_tiny_autoencoder(), uir, TextCondition(describe=", ".join))
    with pytest.raises(ValueError, match="concat_lq=True"):
        UIRStage(build_tiny_autoencoder(), uir, ZeroCondition(), path=NoisyConditionalPath())
    with pytest.raises(ValueError, match="16-channel latents .* makes 48"):
        UIRStage(SpaceToDepthAutoencoder(4), uir, ZeroCondition())
    with pytest.raises(ValueError, match="loss_weighting"):
        UIRStage(build_tiny_autoencoder(), uir, ZeroCondition(), loss_weighting="snr")
    stage = UIRStage(build_tiny_autoencoder(), uir, ZeroCondition())
    bad = PairBatch(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32), [[], []])
    with pytest.raises(ValueError, match="same size"):
        stage(bad)


def test_metrics_file_has_one_line_per_step(tmp_path, text_dir):
    run(tmp_path, make_stage(None), 3)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3] and all(r["loss"] > 0 for r in lines)


def test_own_round_share_starts_that_share_of_the_batch_at_the_models_own_round(text_dir):
    stage = make_stage(text_dir, own_round_share=0.5, own_round_steps=2)
    batch = FixedPairs.collate([FixedPairs()[i] for i in range(4)])
    z_lq = stage.autoencoder.encode(batch.lq)
    cond = stage.condition(stage.modules_by_name(), ConditionInputs(z_lq, batch.labels))
    with torch.no_grad():
        own = restore_round(stage.uir, z_lq[2:], cond.index(slice(2, None)), 2)
    torch.manual_seed(1)
    starts, train_cond = stage.training_starts(z_lq, cond)
    assert torch.equal(starts[:2], z_lq[:2]) and torch.equal(train_cond.pooled[:2], cond.pooled[:2])
    torch.testing.assert_close(starts[2:], own)
    assert (starts[2:] - z_lq[2:]).abs().max() > 1e-4  # the round moved them
    # the own-round items train under batch items' conditions, drawn at random
    assert all(any(torch.equal(row, c) for c in cond.pooled) for row in train_cond.pooled[2:])
    draws = {tuple(stage.training_starts(z_lq, cond)[1].pooled[2:, 0].tolist()) for _ in range(8)}
    assert len(draws) > 1
    loss = stage(batch).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in stage.uir.parameters() if p.requires_grad)
    plain = make_stage(text_dir).training_starts(z_lq, cond)  # share 0: the paper's path
    assert plain[0] is z_lq and plain[1] is cond
    for bad in ({"own_round_share": 1.5}, {"own_round_share": 0.5, "noisy": True}, {"own_round_steps": 0}):
        with pytest.raises(ValueError, match="own_round"):
            make_stage(text_dir, **bad)


def test_wrong_share_trains_that_share_of_the_z_lq_starts_under_another_items_condition(text_dir):
    stage = make_stage(text_dir, own_round_share=0.5, own_round_steps=1, wrong_share=0.5)
    batch = FixedPairs.collate([FixedPairs()[i] for i in range(4)])
    z_lq = stage.autoencoder.encode(batch.lq)
    cond = stage.condition(stage.modules_by_name(), ConditionInputs(z_lq, batch.labels))
    assert len({tuple(row.tolist()) for row in cond.pooled}) == 2  # two different labels in the batch
    torch.manual_seed(0)
    draws = [stage.training_starts(z_lq, cond) for _ in range(12)]
    # of the 2 items starting at z_lq, round(0.5 * 2) = 1 takes a random item's condition, the other keeps its own
    for starts, train_cond in draws:
        assert torch.equal(starts[:2], z_lq[:2]) and torch.equal(train_cond.pooled[1], cond.pooled[1])
        assert all(any(torch.equal(row, c) for c in cond.pooled) for row in train_cond.pooled)
    assert len({tuple(c.pooled[0, :4].tolist()) for _, c in draws}) > 1
    alone = make_stage(text_dir, wrong_share=0.5)  # without own rounds: 2 of 4 items, starts untouched
    starts, train_cond = alone.training_starts(z_lq, cond)
    assert starts is z_lq and torch.equal(train_cond.pooled[2:], cond.pooled[2:])
    assert torch.isfinite(stage(batch).loss)
    with pytest.raises(ValueError, match="wrong_share must lie in"):
        make_stage(text_dir, wrong_share=1.5)
