"""The LQA's comparison adapter and the `compare_own` stage that trains it on the restorer's own rounds."""

from __future__ import annotations

import pathlib

import pytest
import torch
from helpers import load_script
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file

from rar.lqa.abstractor import Abstractor
from rar.lqa.factory import build_depictqa
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.model import COMPARE_ADAPTER
from rar.pipeline import RARPipeline
from rar.pipeline.model_folder import load_depictqa, save_depictqa
from rar.training import checkpoint as ckpt
from rar.training.build import build_stage, run_training
from rar.training.phases import matching_parameters
from rar.training.stages.compare_own import adapter_untrained, copy_lora_adapter

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _lqa(tiny_dir, compare: bool = True):
    torch.manual_seed(0)
    adapter = LatentImageAdapter(16, 64, 16, width=64, nhead=4, dim_feedforward=128, encoder_layers=1, decoder_layers=1)
    return build_depictqa(str(tiny_dir / "depictqa/llm"), Abstractor(64, 16, 1, 4, 128, dropout=0.0),
                          image_adapter=adapter, max_new_tokens=4, compare_adapter=compare)


def _nudge(llm, adapter: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in llm.named_parameters():
            if f".lora_B.{adapter}." in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def test_p_better_reads_the_comparison_adapter_and_assess_the_default(tiny_dir):
    lqa = _lqa(tiny_dir).eval()
    _nudge(lqa.llm, "default", 1)
    assert adapter_untrained(lqa.llm, COMPARE_ADAPTER) and not adapter_untrained(lqa.llm, "default")
    z_a, z_b = torch.randn(2, 2, 16, 8, 8).unbind(0)
    flags = {n: p.requires_grad for n, p in lqa.llm.named_parameters()}
    with torch.no_grad():
        untrained = lqa.p_better(z_a, z_b).p_better  # the comparison adapter is still the bare LLaMA
        answer = lqa.assess(z_a)
        copy_lora_adapter(lqa.llm, "default", COMPARE_ADAPTER)
        lqa.prefix_kv.clear()
        copied = lqa.p_better(z_a, z_b).p_better
        _nudge(lqa.llm, COMPARE_ADAPTER, 2)
        lqa.prefix_kv.clear()
        moved = lqa.p_better(z_a, z_b).p_better
        again = lqa.assess(z_a)  # the prefix cache keeps one entry per adapter
    assert {n: p.requires_grad for n, p in lqa.llm.named_parameters()} == flags  # switching trains nothing new
    assert lqa.active_adapter == "default"
    reference = _lqa(tiny_dir, compare=False).eval()
    reference.load_state_dict({k: v for k, v in lqa.state_dict().items() if f".{COMPARE_ADAPTER}." not in k})
    with torch.no_grad():
        assert torch.allclose(copied, reference.p_better(z_a, z_b).p_better, atol=1e-6)
        assert torch.allclose(again.hidden, reference.assess(z_a).hidden, atol=1e-5)
    assert not torch.allclose(untrained, copied) and not torch.allclose(copied, moved)
    assert again.text == answer.text and torch.allclose(again.hidden, answer.hidden, atol=1e-5)


def test_model_folder_keeps_the_comparison_adapter(tiny_dir, tmp_path):
    lqa = _lqa(tiny_dir).eval()
    _nudge(lqa.llm, "default", 1)
    _nudge(lqa.llm, COMPARE_ADAPTER, 2)
    save_depictqa(lqa, tmp_path / "lqa")
    assert (tmp_path / "lqa/lora" / COMPARE_ADAPTER).is_dir()
    loaded = load_depictqa(tmp_path / "lqa")
    assert loaded.comparison_adapter == COMPARE_ADAPTER
    z_a, z_b = torch.randn(2, 2, 16, 8, 8).unbind(0)
    with torch.no_grad():
        assert torch.equal(lqa.p_better(z_a, z_b).p_better, loaded.p_better(z_a, z_b).p_better)
        assert torch.equal(lqa.assess(z_a).hidden, loaded.assess(z_a).hidden)
    with pytest.raises(ValueError, match="comparison adapter"):
        save_depictqa(lqa, tmp_path / "merged", lora="merged")


def _compose(tiny_dir, run_dir, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=[
            f"tiny_dir={tiny_dir}", f"run_dir={run_dir}", "trainer.progress=false", "trainer.batch_size=2",
            "data.dataset.length=4", f"data.dataset.source={ROOT / 'data/samples/train'}", "data.dataset.crop_size=32",
            *overrides,
        ])


def test_stage_trains_only_the_comparison_adapter_and_exports_it(tiny_dir, tmp_path):
    """A stand-in `joint` run (uir + text adapter + LQA) → `stage=compare_own` for 3 steps → a model folder."""
    prev = tmp_path / "joint"
    torch.manual_seed(0)
    cfg = _compose(tiny_dir, prev, "stage=uir", "condition=lqa")
    prev.mkdir()
    (prev / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    stage, _ = build_stage(cfg)
    _nudge(stage.lqa.llm, "default", 1)
    ckpt.export_model(stage, prev, set(matching_parameters(stage, ("lqa.image_adapter.*", "lqa.llm.*lora_*",
                                                                   "text_adapter.*", "uir.*"))))
    run = tmp_path / "compare_own"
    cfg = _compose(tiny_dir, run, "stage=compare_own", f"init_from={prev}", "phases.0.max_steps=3",
                   "stage.target.rounds=2", "stage.target.steps_per_round=1", "stage.target.pairs_per_step=4")
    (res,) = run_training(cfg)
    assert res.steps == 3 and all(loss > 0 for loss in res.losses)
    before, after = load_file(prev / "model/lqa" / ckpt.WEIGHTS_NAME), load_file(run / "model/lqa" / ckpt.WEIGHTS_NAME)
    compare = [k for k in after if f".{COMPARE_ADAPTER}." in k]
    assert compare and all(k.replace(f".{COMPARE_ADAPTER}.", ".default.") in before for k in compare)
    for key in before:  # the default adapter and the image adapter are untouched
        assert torch.equal(before[key], after[key]), key
    # the comparison adapter started as a copy of the default one (lora_B 0.05-sized) and moved a little
    gap = max(float((after[k] - before[k.replace(f".{COMPARE_ADAPTER}.", ".default.")]).abs().max())
              for k in compare if ".lora_B." in k)
    assert 0 < gap < 0.01
    for name in ("uir", "text_adapter"):
        assert load_file(run / "model" / name / ckpt.WEIGHTS_NAME).keys() == load_file(
            prev / "model" / name / ckpt.WEIGHTS_NAME).keys()
    out = tmp_path / "folder"
    assert load_script("export_pipeline").main([f"run_dir={run}", f"out={out}"]) == 0
    pipe = RARPipeline.from_pretrained(out)
    assert pipe.lqa.comparison_adapter == COMPARE_ADAPTER
    with torch.no_grad():
        result = pipe(torch.rand(1, 3, 32, 32))
    assert all(r.p_better is not None for t in result.trajectories for r in t.rounds)


def test_stage_refuses_an_lqa_without_the_adapter(tiny_dir, tmp_path):
    cfg = _compose(tiny_dir, tmp_path / "run", "stage=compare_own", "lqa.compare_adapter=false")
    with pytest.raises(ValueError, match="compare_adapter=true"):
        build_stage(cfg)
