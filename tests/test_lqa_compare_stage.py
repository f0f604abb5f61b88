"""The `lqa_compare` stage: the comparison trained on the restorer's own rounds, balanced, with the
UIR frozen; its config through `scripts/train.py`'s composition from a joint-like run."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from test_joint_stage import (
    CONFIGS,
    FixedPairs,
    _labelled_batch,
    compose_joint,
    make_stage,
)

from rar.training import checkpoint as ckpt
from rar.training.build import build_stage, run_training
from rar.training.phases import matching_parameters, set_trainable
from rar.training.stages.lqa_compare import LQACompareStage
from rar.training.stages.round_comparison import balanced_rows, own_rounds

TRAINABLE = tuple(OmegaConf.load(CONFIGS / "stage/lqa_compare.yaml").phases[0].trainable)


def make_compare_stage(tiny_dir, **kwargs) -> LQACompareStage:
    return LQACompareStage(**dict(make_stage(tiny_dir).named_children()), **kwargs)


def test_balanced_rows_keep_every_rare_row_and_as_many_common_ones():
    flags = torch.tensor([True, False, False, False, True, False, False])
    rows = balanced_rows(flags, torch.Generator().manual_seed(0))
    assert rows.tolist() == sorted(rows.tolist()) and {0, 4} <= set(rows.tolist())
    assert int(flags[rows].sum()) == 2 and len(rows) == 4
    assert balanced_rows(torch.ones(3, dtype=torch.bool)).tolist() == [0, 1, 2]  # one verdict only: all rows


def test_own_rounds_follow_the_inference_loop(tiny_dir):
    stage = make_compare_stage(tiny_dir, steps=2)
    data = FixedPairs()
    z_lq = stage.autoencoder.encode(data.lq)
    rounds = own_rounds(stage.autoencoder, stage.lqa, stage.text_adapter, stage.uir, z_lq, data.hq, 2, 2, "psnr")
    assert len(rounds.states) == len(rounds.scores) == 3 and torch.equal(rounds.states[0], z_lq)
    from rar.pipeline import LoopConfig, RARPipeline

    pipe = RARPipeline(stage.autoencoder, stage.uir, stage.lqa, stage.text_adapter,
                       LoopConfig(max_rounds=2, steps_per_round=2, stop="fixed"))
    result = pipe(data.lq, return_latents=True)
    for b, trajectory in enumerate(result.trajectories):
        for r, record in enumerate(trajectory.rounds):
            torch.testing.assert_close(record.latent, rounds.states[r + 1][b], rtol=1e-4, atol=1e-5)


def test_step_trains_the_lqa_on_balanced_pairs_of_its_own_rounds(tiny_dir):
    stage = make_compare_stage(tiny_dir, rounds=2, steps=2, metric="psnr", qa_weight=0.5)
    names = matching_parameters(stage, TRAINABLE)
    set_trainable(stage, names)
    batch = _labelled_batch()
    rounds = own_rounds(stage.autoencoder, stage.lqa, stage.text_adapter, stage.uir,
                        stage.autoencoder.encode(batch.lq), batch.hq, 2, 2, "psnr")
    helped = torch.cat(rounds.scores[1:]) > torch.cat(rounds.scores[:-1])
    rare = min(int(helped.sum()), int((~helped).sum()))
    expected = 2 * rare if rare else len(helped)
    calls = []
    inner = stage.lqa.forward
    stage.lqa.forward = lambda layouts, images, space=None: calls.append(
        ([layout.task_type for layout in layouts], images.shape[0])) or inner(layouts, images, space=space)
    out = stage(batch)
    (compare_tasks, compare_images), (qa_tasks, _) = calls
    assert len(compare_tasks) == expected == out.logs["pairs"] and compare_images == 2 * expected
    assert len(qa_tasks) == 4  # one DepictQA record per example
    assert out.loss.item() == pytest.approx(out.logs["loss_compare"] + 0.5 * out.logs["loss_qa"], rel=1e-5)
    out.loss.backward()
    grads = {n: p.grad for n, p in stage.named_parameters()}
    assert any(grads[n] is not None and grads[n].abs().sum() > 0 for n in names if "lora_" in n)
    assert any(grads[n] is not None and grads[n].abs().sum() > 0 for n in names if n.startswith("lqa.image_adapter."))
    assert all(grads[n] is None for n in grads if n.startswith(("uir.", "text_adapter.")))


def test_validate_reports_how_the_lqa_judges_its_rounds(tiny_dir, tmp_path):
    stage = make_compare_stage(tiny_dir, rounds=1, steps=2, val_dataset=FixedPairs(), val_samples=4)
    stage.val_dataset.collate = FixedPairs.collate
    values = stage.validate(tmp_path, step=1)
    assert 0.0 <= values["compare_accuracy"] <= 1.0 and 0.0 <= values["helped_rate"] <= 1.0
    assert {"p_better_helped", "p_better_harmed"} & set(values)
    assert (tmp_path / "compare.json").is_file()
    assert make_compare_stage(tiny_dir).validate(tmp_path / "none", step=1) == {}


def test_stage_checks_its_arguments(tiny_dir):
    parts = dict(make_stage(tiny_dir).named_children())
    for bad, match in (({"rounds": 0}, "rounds and steps"), ({"metric": "lpips"}, "metric must be"),
                       ({"qa_weight": -1.0}, "qa_weight")):
        with pytest.raises(ValueError, match=match):
            LQACompareStage(**parts, **bad)
    parts["lqa"].image_space = "pixel"
    with pytest.raises(ValueError, match="latent path"):
        LQACompareStage(**parts)


def test_config_trains_from_a_joint_run_and_leaves_the_restorer_alone(tiny_dir, tmp_path):
    prev = tmp_path / "joint"  # stands in for the joint run (model/{uir,text_adapter,lqa})
    torch.manual_seed(0)
    stage, _ = build_stage(compose_joint(tiny_dir, prev, "stage=joint"))
    ckpt.export_model(stage, prev, set(matching_parameters(stage, ("uir.*", "text_adapter.*", "lqa.image_adapter.*",
                                                                   "lqa.llm.*lora_*"))))
    cfg = compose_joint(tiny_dir, tmp_path / "compare", "stage=lqa_compare", "phases.0.max_steps=2",
                        "stage.target.steps=2", f"init_from={prev}")
    stage, loaded = build_stage(cfg)
    assert isinstance(stage, LQACompareStage)
    assert {k.split(".")[0] for k in loaded} == {"lqa", "text_adapter", "uir"}
    (res,) = run_training(cfg)
    assert res.steps == 2 and all(loss > 0 for loss in res.losses)
    for part in ("uir", "text_adapter"):  # frozen here: exported unchanged
        before = load_file(prev / "model" / part / ckpt.WEIGHTS_NAME)
        after = load_file(tmp_path / "compare/model" / part / ckpt.WEIGHTS_NAME)
        assert set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)
    lqa_before = load_file(prev / "model/lqa" / ckpt.WEIGHTS_NAME)
    lqa_after = load_file(tmp_path / "compare/model/lqa" / ckpt.WEIGHTS_NAME)
    assert any(not torch.equal(lqa_before[k], lqa_after[k]) for k in lqa_before if "lora_" in k)


def test_choice_loss_trains_only_the_two_choice_rows_of_the_head(tiny_dir):
    stage = make_compare_stage(tiny_dir, rounds=1, steps=2, metric="psnr", balance=False, loss="choice", qa_weight=0.0)
    set_trainable(stage, matching_parameters(stage, ("lqa.llm.*lm_head*",)))
    out = stage(FixedPairs().batch())
    assert out.logs["pairs"] == 4 and 0.0 <= out.logs["compare_accuracy"] <= 1.0
    out.loss.backward()
    (head,) = [p for n, p in stage.named_parameters() if p.requires_grad]
    _, id_a, id_b = stage.lqa._choice_tokens()
    touched = head.grad.abs().sum(1).nonzero().squeeze(1).tolist()
    assert touched == sorted([id_a, id_b])  # the identification's other tokens keep their logits
    with pytest.raises(ValueError, match="loss must be one of"):
        make_compare_stage(tiny_dir, loss="hinge")
