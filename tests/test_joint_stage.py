"""The `joint` stage: iterative assessment, gradients to every trained part, the non-iterative
variant, learning, the config through `scripts/train.py`'s composition, and a golden loss curve.

Regenerate the golden curve after an intended change: ``RAR_UPDATE_GOLDEN=1 pytest tests/test_joint_stage.py``.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
from dataclasses import dataclass

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file

from rar.lqa.abstractor import Abstractor
from rar.lqa.factory import build_depictqa
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.text_adapter import TextAdapter
from rar.testing import build_tiny_autoencoder
from rar.training import checkpoint as ckpt
from rar.training.build import build_stage, run_training
from rar.training.loop import TrainConfig, train
from rar.training.phases import Phase, matching_parameters, set_trainable
from rar.training.stages.joint import JointStage, answer_hidden
from rar.uir.backbones import build_sd3_transformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
GOLDEN = ROOT / "tests/assets/losses/joint_tiny.txt"
TRAINABLE = tuple(OmegaConf.load(CONFIGS / "stage/joint.yaml").joint_trainable.train)  # the paper's joint


@dataclass
class PairBatch:
    lq: torch.Tensor
    hq: torch.Tensor


class FixedPairs(torch.utils.data.Dataset):
    """Smooth random 16x16 images, darkened or hazed: a fixed, learnable mapping."""

    def __init__(self, n: int = 4, size: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        hq = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bilinear")
        dark = (torch.arange(n) % 2 == 0).view(-1, 1, 1, 1)
        self.lq, self.hq = torch.where(dark, hq * 0.4, 0.5 * hq + 0.4), hq

    def __len__(self) -> int:
        return len(self.hq)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lq[i], self.hq[i]

    @staticmethod
    def collate(items) -> PairBatch:
        return PairBatch(torch.stack([a for a, _ in items]), torch.stack([b for _, b in items]))

    def batch(self) -> PairBatch:
        return PairBatch(self.lq, self.hq)


def make_stage(tiny_dir, **kwargs) -> JointStage:
    torch.manual_seed(0)
    adapter = LatentImageAdapter(16, 64, 16, width=64, nhead=4, dim_feedforward=128, encoder_layers=1, decoder_layers=1)
    lqa = build_depictqa(str(tiny_dir / "depictqa/llm"), Abstractor(64, 16, 1, 4, 128, dropout=0.0),
                         image_adapter=adapter, max_new_tokens=4)
    text_adapter = TextAdapter(128, 8, 64, 48, width=64, nhead=4, dim_feedforward=128)
    return JointStage(build_tiny_autoencoder(), lqa, text_adapter, build_sd3_transformer(config="tiny"), **kwargs)


class CountingAssess:
    """Wraps ``lqa.assess`` and records the latents of every call."""

    def __init__(self, lqa) -> None:
        self.inner, self.inputs = lqa.assess, []
        lqa.assess = self

    def __call__(self, x, *args, **kwargs):
        self.inputs.append(x.detach().clone())
        return self.inner(x, *args, **kwargs)


def test_teacher_forced_hidden_equals_what_assess_returns(tiny_dir):
    stage = make_stage(tiny_dir).eval()
    z = stage.autoencoder.encode(FixedPairs().lq)
    with torch.no_grad():
        a = stage.lqa.assess(z)
        hidden = answer_hidden(stage.lqa, z, a.tokens)
    assert hidden.shape == a.hidden.shape
    torch.testing.assert_close(hidden[a.mask], a.hidden[a.mask], rtol=1e-4, atol=1e-5)


def test_gradients_reach_lora_both_adapters_and_the_uir(tiny_dir):
    stage = make_stage(tiny_dir)
    names = matching_parameters(stage, TRAINABLE)
    set_trainable(stage, names)
    stage(FixedPairs().batch()).loss.backward()
    grads = {n: p.grad for n, p in stage.named_parameters()}
    for group in ("lqa.llm.", "lqa.image_adapter.", "text_adapter.", "uir."):
        trained = [n for n in names if n.startswith(group)]
        assert trained, group
        assert any(grads[n] is not None and grads[n].abs().sum() > 0 for n in trained), f"no gradient reaches {group}"
    assert all("lora_" in n for n in names if n.startswith("lqa.llm."))
    frozen = [n for n in grads if n not in set(names)]
    assert frozen and all(grads[n] is None for n in frozen)


def test_non_iterative_conditions_on_z_lq_with_one_assessment(tiny_dir):
    stage = make_stage(tiny_dir, iterative=False, segment_sampling="all")
    spy = CountingAssess(stage.lqa)
    data = FixedPairs()
    stage(data.batch())
    assert len(spy.inputs) == 1
    torch.testing.assert_close(spy.inputs[0], stage.autoencoder.encode(data.lq))


def test_iterative_assesses_the_models_own_latent_at_every_boundary(tiny_dir):
    stage = make_stage(tiny_dir, segment_sampling="all")
    spy = CountingAssess(stage.lqa)
    z_lq = stage.autoencoder.encode(FixedPairs().lq)
    stage(FixedPairs().batch())
    assert len(spy.inputs) == 4 and all(x.shape == z_lq.shape for x in spy.inputs)
    torch.testing.assert_close(spy.inputs[0], z_lq)
    with torch.no_grad():  # the first boundary is one Euler step of the UIR conditioned on c_0
        c0, _ = stage.assess(z_lq)
        z1 = z_lq + 0.25 * stage.uir(z_lq, torch.zeros(len(z_lq)), c0)
    torch.testing.assert_close(spy.inputs[1], z1, rtol=1e-4, atol=1e-5)
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(spy.inputs, spy.inputs[1:]))


def test_rollout_rows_are_independent_and_stop_at_their_depth(tiny_dir):
    stage = make_stage(tiny_dir).eval()
    z = stage.autoencoder.encode(FixedPairs().lq[:3])
    with torch.no_grad():
        roll = stage.rollout(z, torch.tensor([2, 0, 1]), steps=1)
        alone = stage.rollout(z[:1], torch.tensor([2]), steps=1)
    assert roll.latents.shape == (3, *z.shape) and roll.tokens.shape[:2] == (3, 3)
    torch.testing.assert_close(roll.latents[2, 0], alone.latents[2, 0], rtol=1e-4, atol=1e-5)
    assert torch.equal(roll.latents[2, 1], z[1]) and torch.equal(roll.latents[2, 2], roll.latents[1, 2])
    assert roll.mask[:, 0].any(1).all() and roll.mask[1:, 1].sum() == 0 and roll.mask[2, 2].sum() == 0
    assert not roll.latents.requires_grad


def test_rollout_grad_keeps_the_rollout_graph(tiny_dir):
    z = build_tiny_autoencoder().encode(FixedPairs().lq[:2])
    depth = torch.tensor([2, 1])
    assert make_stage(tiny_dir, rollout_grad=True).rollout(z, depth, steps=1).latents.requires_grad
    assert not make_stage(tiny_dir).rollout(z, depth, steps=1).latents.requires_grad


def test_lowers_its_loss_on_a_fixed_batch(tiny_dir, tmp_path):
    stage, data, steps = make_stage(tiny_dir, segment_sampling="all"), FixedPairs(), 30
    config = TrainConfig(seed=0, batch_size=len(data), log_every=1, checkpoint_every=10_000, progress=False)
    (res,) = train(stage, data, [Phase("main", steps, TRAINABLE)], functools.partial(torch.optim.AdamW, lr=1e-3),
                   config, tmp_path, collate_fn=data.collate)
    first, last = sum(res.losses[:3]) / 3, sum(res.losses[-3:]) / 3
    print(f"joint stage: loss {first:.4f} -> {last:.4f} in {steps} steps, {res.seconds / steps * 1000:.0f} ms/step")
    assert last < first / 3
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"lqa", "text_adapter", "uir"}


def test_validate_restores_with_a_reassessment_per_segment(tiny_dir, tmp_path):
    data = FixedPairs()
    stage = make_stage(tiny_dir, val_dataset=data, val_samples=3, val_steps=8)
    spy = CountingAssess(stage.lqa)
    values = stage.validate(tmp_path / "val", step=1)
    assert set(values) == {"psnr", "psnr_input"} and values["psnr"] > 0
    assert len(spy.inputs) == 4  # boundaries 0, 1/4, 1/2, 3/4; the final latent is not assessed
    answers = json.loads((tmp_path / "val/answers.json").read_text())
    assert len(answers) == 3 and all(len(a) == 4 for a in answers)
    assert (tmp_path / "val/restored.png").is_file()
    assert make_stage(tiny_dir).validate(tmp_path / "none", step=1) == {}


def test_stage_checks_its_parts(tiny_dir):
    stage = make_stage(tiny_dir)
    parts = dict(stage.named_children())
    with pytest.raises(ValueError, match="multiple of the 4 segments"):
        JointStage(**parts, val_steps=6)
    with pytest.raises(ValueError, match="segment_sampling"):
        JointStage(**parts, segment_sampling="some")
    stage.lqa.image_space = "pixel"
    with pytest.raises(ValueError, match="latent path"):
        JointStage(**parts)
    stage.lqa.image_space = "latent"
    with pytest.raises(ValueError, match="concat_lq=False"):
        JointStage(**(parts | {"uir": build_sd3_transformer(config="tiny", concat_lq=True)}))
    with pytest.raises(ValueError, match="same size"):
        stage(PairBatch(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)))


def compose_joint(tiny_dir, run_dir, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[
            f"tiny_dir={tiny_dir}", f"run_dir={run_dir}", "trainer.progress=false", "trainer.batch_size=2",
            "data.dataset.length=4", f"data.dataset.source={ROOT / 'data/samples/train'}", *overrides,
        ])


def read_losses(path: pathlib.Path) -> list[tuple[int, float]]:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(int(step), float(loss)) for step, loss in rows]


def test_golden_loss_curve(tiny_dir, tmp_path):
    """The first 5 steps of the tiny `joint` config (CAME, cosine), seeded, against the stored curve."""
    cfg = compose_joint(tiny_dir, tmp_path / "run", "stage=joint", "phases.0.max_steps=5")
    torch.manual_seed(cfg.trainer.seed)  # model initialisation (the loop seeds only training)
    (res,) = run_training(cfg)
    curve = list(enumerate(res.losses, start=1))
    if os.environ.get("RAR_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text("# step loss: tests/test_joint_stage.py::test_golden_loss_curve (RAR_UPDATE_GOLDEN=1)\n"
                          + "".join(f"{s} {loss:.8f}\n" for s, loss in curve))
    golden = read_losses(GOLDEN)
    assert [s for s, _ in curve] == [s for s, _ in golden]
    assert [loss for _, loss in curve] == pytest.approx([loss for _, loss in golden], rel=1e-4)


def test_train_entry_point_continues_a_uir_run(tiny_dir, tmp_path):
    """`stage=uir condition=lqa` exports uir + text_adapter + lqa; `stage=joint init_from=<it>` loads all
    three, trains 2 steps (the non-iterative variant here) and hands them on."""
    prev = tmp_path / "cond_align"  # stands in for the cond_align run the uir stage starts from
    uir_overrides = ("stage=uir", "condition=lqa", "phases.0.max_steps=1", "phases.1.max_steps=1")
    torch.manual_seed(0)
    stage, _ = build_stage(compose_joint(tiny_dir, prev, *uir_overrides))
    ckpt.export_model(stage, prev, set(matching_parameters(stage, ("lqa.image_adapter.*", "lqa.llm.*lora_*",
                                                                   "text_adapter.*"))))
    run_training(compose_joint(tiny_dir, tmp_path / "uir", *uir_overrides, f"init_from={prev}"))
    uir_model = tmp_path / "uir/model"
    assert {p.name for p in uir_model.iterdir()} == {"lqa", "text_adapter", "uir"}
    cfg = compose_joint(tiny_dir, tmp_path / "joint", "stage=joint", "phases.0.max_steps=2", "iterative=false",
                        f"init_from={tmp_path / 'uir'}")
    assert cfg.optimizer._target_ == "came_pytorch.CAME" and cfg.trainer.lr_scheduler == "cosine"
    stage, loaded = build_stage(cfg)
    assert stage.num_segments == 1
    assert {k.split(".")[0] for k in loaded} == {"lqa", "text_adapter", "uir"}
    (res,) = run_training(cfg)
    assert res.steps == 2 and all(loss > 0 for loss in res.losses)
    before = load_file(uir_model / "uir" / ckpt.WEIGHTS_NAME)
    after = load_file(tmp_path / "joint/model/uir" / ckpt.WEIGHTS_NAME)
    assert set(after) == set(before) and any(not torch.equal(before[k], after[k]) for k in before)
    lqa_after = load_file(tmp_path / "joint/model/lqa" / ckpt.WEIGHTS_NAME)
    assert any("lora_" in k for k in lqa_after) and any(k.startswith("image_adapter.") for k in lqa_after)


def _labelled_batch():
    """FixedPairs with degradation labels, as a RestorationBatch."""
    from rar.data.batch import RestorationBatch
    from rar.degradations import DegradationLabel

    pairs = FixedPairs().batch()
    labels = [[DegradationLabel("dark", {}, "medium")] if i % 2 == 0 else [DegradationLabel("haze", {}, "medium")]
              for i in range(len(pairs.lq))]
    return RestorationBatch(pairs.lq, pairs.hq, labels, [f"img{i}" for i in range(len(labels))], ["fixed"] * len(labels))


def test_init_from_a_list_takes_each_module_from_its_run(tiny_dir, tmp_path):
    """`init_from=[cond_align, uir]` (the tiny layout: a condition=text UIR has no LQA): the LQA side
    from the first run, the UIR from the second; a module both hold comes from the later one."""
    torch.manual_seed(0)
    lqa_side, _ = build_stage(compose_joint(tiny_dir, tmp_path / "cond_align", "stage=uir", "condition=lqa"))
    with torch.no_grad():
        lqa_side.uir.backbone.proj_out.weight.fill_(1.0)
    ckpt.export_model(lqa_side, tmp_path / "cond_align", set(matching_parameters(
        lqa_side, ("lqa.image_adapter.*", "lqa.llm.*lora_*", "text_adapter.*", "uir.backbone.proj_out.*"))))
    uir_side, _ = build_stage(compose_joint(tiny_dir, tmp_path / "uir", "stage=uir", "condition=text"))
    with torch.no_grad():
        uir_side.uir.backbone.proj_out.weight.fill_(2.0)
    ckpt.export_model(uir_side, tmp_path / "uir", {f"uir.{k}" for k in uir_side.uir.state_dict()})
    cfg = compose_joint(tiny_dir, tmp_path / "joint", "stage=joint",
                        f"init_from=[{tmp_path / 'cond_align'},{tmp_path / 'uir'}]")
    stage, loaded = build_stage(cfg)
    assert {k.split(".")[0] for k in loaded} == {"lqa", "text_adapter", "uir"}
    for key, value in lqa_side.text_adapter.state_dict().items():
        assert torch.equal(stage.text_adapter.state_dict()[key], value), key
    assert (stage.uir.backbone.proj_out.weight == 2.0).all()
