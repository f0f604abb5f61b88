"""scripts/bench.py on the tiny config (a smoke: no timing assertions) and the inference fast paths."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import ROOT, load_script
from hydra import compose, initialize_config_dir

from rar.core.outputs import STAGES
from rar.pipeline.fast_paths import FastPaths
from rar.pipeline.pipeline import RARPipeline
from rar.testing import save_tiny_rar_model


def test_bench_runs_every_part_on_the_tiny_config(tmp_path):
    bench = load_script("bench")
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("bench", overrides=[
            f"tiny_dir={tmp_path}/pretrained", f"+out_dir={tmp_path}/out", "resolution=32", "repeats=1", "warmup=0",
            "inference.batch_sizes=[1,2]", "inference.loop.max_rounds=2", "inference.loop.steps_per_round=2",
            "+inference.variants={math: {attention: math}}", "training.stages=[uir]", "training.batch=2",
            "degradations.size=32", "degradations.batch=1", "degradations.groups=[B]",
        ])
    results = bench.run(cfg)
    assert json.loads((tmp_path / "out/bench.json").read_text())["inference"] == results["inference"]
    rows = results["inference"]
    assert [(r["variant"], r["batch"]) for r in rows] == [("base", 1), ("base", 2), ("math", 1), ("math", 2)]
    for r in rows:
        assert set(r["seconds_per_image"]) == set(STAGES)
        assert 0 < sum(r["seconds_per_image"].values()) <= r["latency_per_image"] * 1.05
        assert 1 <= r["rounds"] <= 2 and r["peak_memory_bytes"] is None
        assert r["flops_per_image"] > 0 and r["mfu"] is None  # counted FLOPs; no peak FLOP/s on CPU
    (train,) = results["training"]
    assert train["stage"] == "uir" and train["step_seconds"] > 0 and train["flops_per_step"] > 0
    assert train["mfu"] is None  # no peak FLOP/s on CPU
    assert set(results["degradations"]["groups"]) == {"B"} and len(results["degradations"]["rows"]) == 4
    # a second run with capped answers and fixed rounds, compared with the first
    cfg.compare_to, cfg.parts = str(tmp_path / "out/bench.json"), ["inference"]
    cfg.inference.max_new_tokens, cfg.inference.loop.stop = 2, "fixed"
    cfg.out_dir = str(tmp_path / "out2")
    again = bench.run(cfg)
    assert len(again["compared_to"]["lines"]) == 4 and "s/image" in again["compared_to"]["lines"][0]
    assert all(r["rounds"] == 2 for r in again["inference"])
    with pytest.raises(ValueError, match="unknown bench parts"):
        cfg.parts = ["inference", "profile"]
        bench.run(cfg)


def test_fast_paths_validate_and_keep_outputs(tmp_path, tiny_dir):
    with pytest.raises(ValueError, match="attention must be one of"):
        FastPaths(attention="xformers")
    with pytest.raises(TypeError, match="unknown fast-path switches"):
        FastPaths.of({"compile": True})
    folder = save_tiny_rar_model(tmp_path / "model")
    pipe = RARPipeline.from_pretrained(folder, max_rounds=2, stop="fixed", fast={"prefix_cache": False})
    assert pipe.lqa.prefix_cache is False
    lq = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    reference = pipe(lq).images
    pipe.set_fast_paths({"attention": "math", "prefix_cache": True})
    assert pipe.lqa.prefix_cache is True
    torch.testing.assert_close(pipe(lq).images, reference, atol=1e-5, rtol=0)
    pipe.set_fast_paths({"merge_lora": True})
    assert all(layer.merged for layer in pipe.lqa.llm.modules() if hasattr(layer, "merged"))
    torch.testing.assert_close(pipe(lq).images, reference, atol=1e-5, rtol=0)
    pipe.set_fast_paths({"merge_lora": False})
    assert not any(layer.merged for layer in pipe.lqa.llm.modules() if hasattr(layer, "merged"))
    pipe.set_fast_paths({"static_decode": True})
    assert pipe.lqa.static_decoder is not None and not pipe.lqa.static_decoder.compile_step
    torch.testing.assert_close(pipe(lq).images, reference, atol=1e-5, rtol=0)
    pipe.set_fast_paths({"static_decode": True, "compile_decode": True})
    assert pipe.lqa.static_decoder.compile_step
    pipe.set_fast_paths({})
    assert pipe.lqa.static_decoder is None
    with pytest.raises(ValueError, match="compile_decode needs static_decode"):
        FastPaths(compile_decode=True)
    backbone = pipe.uir.backbone
    pipe.set_fast_paths({"compile_uir": True})
    assert backbone._compiled_call_impl is not None
    pipe.set_fast_paths(None)
    assert backbone._compiled_call_impl is None
