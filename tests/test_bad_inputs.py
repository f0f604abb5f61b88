"""Issue 17's table: every bad input, broken folder and interrupted run a careful user tried.

Each row runs a script's entry point (``scripts/train.py``'s ``run``, ``scripts/eval.py``'s
``main`` body, ``scripts/restore.py``'s ``main``) or a library call in-process, and asserts its
exit code, its message, and that nothing in a sentinel folder beside the run changed (files,
sizes, modification times). Cases already covered elsewhere are listed in ``COVERED_ELSEWHERE``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import load_script
from hydra import compose, initialize_config_dir
from PIL import Image

from rar.degradations import degrade
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig
from rar.testing import build_tiny_rar_pipeline, save_tiny_autoencoder
from rar.training import checkpoint as ckpt
from rar.utils.cli_errors import one_line_errors
from rar.utils.image_io import save_image

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

COVERED_ELSEWHERE = {
    "gray / RGBA / 16-bit inputs restored, a corrupt file skipped (exit 1)":
        "tests/test_restore_cli.py::test_folder_with_every_input_kind_and_a_corrupt_file",
    "palette / GIF / truncated / non-image / empty files name the file": "tests/test_image_io.py",
    "training resume after SIGTERM is exact": "tests/test_training_loop.py (SIGTERM rows)",
    "eval resume after a kill skips scored images": "tests/test_eval_harness.py::test_resume_skips_scored_images",
}


@dataclass
class Ctx:
    """What a case works in: ``work`` (its run folders), ``outside`` (the sentinel folder that must
    not change), the shared tiny model folder and tiny pretrained stand-ins."""

    work: Path
    outside: Path
    model: Path
    tiny_dir: Path


def _exit_code(call: Callable[[], object]) -> int:
    try:
        result = call()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return result if isinstance(result, int) else 0


# ----------------------------------------------------------------------------------- training
def _train_cfg(ctx: Ctx, run: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[
            "stage=uir", "condition=none", f"tiny_dir={ctx.tiny_dir}", f"run_dir={ctx.work / run}",
            "trainer.progress=false", "trainer.batch_size=2", "data.dataset.length=4", "phases.0.max_steps=2",
            "trainer.checkpoint_every=1", *overrides,
        ])


def _train(ctx: Ctx, run: str, *overrides: str) -> int:
    return _exit_code(lambda: load_script("train").run(_train_cfg(ctx, run, *overrides)))


def _steps(ctx: Ctx, run: str) -> list[str]:
    return sorted(p.name for p in (ctx.work / run / "checkpoints" / "main").iterdir())


def overwrite_starts_over(ctx: Ctx) -> int:
    assert _train(ctx, "r", "phases.0.max_steps=4") == 0
    code = _train(ctx, "r", "overwrite=true")
    assert _steps(ctx, "r") == ["step_0000001", "step_0000002"]  # before: the old run's 3 and 4 kept, new 1 rotated
    return code


def resume_of_another_stage(ctx: Ctx) -> int:
    assert _train(ctx, "r") == 0
    ckpt.write_meta(ctx.work / "r", stage="joint")
    return _train(ctx, "r", "resume=true")


def failed_start_writes_nothing(ctx: Ctx) -> int:
    code = _train(ctx, "r", "phases.0.lr=-1")
    assert not (ctx.work / "r" / "config.yaml").exists()
    assert _train(ctx, "r") == 0  # before: "already holds a run; pass resume=true"
    return code


def missing_pretrained_folder(ctx: Ctx) -> int:
    return _train(ctx, "r", "condition=text", f"tiny_dir={ctx.work / 'not_built'}")


def init_from_wrong_stage(ctx: Ctx) -> int:
    other = ctx.work / "lqa_run"
    ckpt.save_tensors({"w": torch.zeros(2)}, other / "model" / "lqa" / ckpt.WEIGHTS_NAME)
    ckpt.write_meta(other, stage="lqa_align")
    return _train(ctx, "r", f"init_from={other}")


def init_from_another_autoencoder(ctx: Ctx) -> int:
    assert _train(ctx, "first") == 0
    other = save_tiny_autoencoder(ctx.work / "other_autoencoder", seed=1)
    return _train(ctx, "r", f"init_from={ctx.work / 'first'}", f"autoencoder.pretrained={other}")


def init_from_corrupt_weights(ctx: Ctx) -> int:
    assert _train(ctx, "first") == 0
    (ctx.work / "first" / "model" / "uir" / ckpt.WEIGHTS_NAME).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")
    return _train(ctx, "r", f"init_from={ctx.work / 'first'}")


def interrupted_run_exits_nonzero(ctx: Ctx, monkeypatch) -> int:
    from rar.training import loop
    monkeypatch.setattr(loop, "_preempted", lambda accelerator, preemption: True)  # SIGTERM after step 1
    code = _train(ctx, "r")
    assert _steps(ctx, "r") == ["step_0000001"]
    return code


def _damage_latest(ctx: Ctx, how: str) -> int:
    assert _train(ctx, "r", "phases.0.max_steps=3") == 0
    latest = ctx.work / "r" / "checkpoints" / "main" / "step_0000003"
    if how == "truncate":
        data = (latest / ckpt.TRAINABLE_NAME).read_bytes()
        (latest / ckpt.TRAINABLE_NAME).write_bytes(data[: len(data) // 2])
    else:
        (latest / "random_states_0.pkl").unlink()
    ckpt.write_meta(ctx.work / "r", phases_done=[])  # as if killed before the phase finished
    return _train(ctx, "r", "resume=true", "phases.0.max_steps=4")


def corrupt_latest_checkpoint_falls_back(ctx: Ctx) -> int:
    return _damage_latest(ctx, "truncate")


def missing_rng_state_falls_back(ctx: Ctx) -> int:
    return _damage_latest(ctx, "rng")


def every_checkpoint_corrupt(ctx: Ctx) -> int:
    assert _train(ctx, "r") == 0
    for step in (ctx.work / "r" / "checkpoints" / "main").iterdir():
        (step / "optimizer.bin").write_bytes(b"not a torch file")
    ckpt.write_meta(ctx.work / "r", phases_done=[])
    return _train(ctx, "r", "resume=true", "phases.0.max_steps=3")


# ----------------------------------------------------------------------------------- evaluation
def _benchmark(root: Path, lq: str = "LQ/d1/noise/a.png") -> Path:
    g = torch.Generator().manual_seed(0)
    save_image(torch.rand(3, 16, 16, generator=g), root / "HQ" / "a.png")
    if not lq.startswith(("/", "LQ/..")):
        save_image(torch.rand(3, 16, 16, generator=g), root / lq)
    manifest = {"format": "rar-benchmark-set/1", "kind": "built", "groups": {"A": ["noise"]}, "items": [
        {"name": "a.png", "group": "A", "combination": "noise", "degradations": ["noise"], "lq": lq, "hq": "HQ/a.png"}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _eval(ctx: Ctx, bench: Path, *overrides: str) -> int:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("eval", overrides=[
            "benchmark=samples_groupA", f"benchmark.root={bench}", "metrics=[psnr]", f"run_dir={ctx.work / 'eval'}",
            "device=cpu", "progress=false", "montage=0", *overrides])

    def main():
        with one_line_errors():
            load_script("eval").run(cfg)
    return _exit_code(main)


def manifest_escapes_with_dotdot(ctx: Ctx) -> int:
    victim = ctx.outside / "victim.png"
    return _eval(ctx, _benchmark(ctx.work / "bench", f"LQ/../../../{ctx.outside.name}/{victim.name}"))


def manifest_absolute_path(ctx: Ctx) -> int:
    return _eval(ctx, _benchmark(ctx.work / "bench", str(ctx.outside / "victim.png")))


def eval_resume_with_changed_model(ctx: Ctx) -> int:
    bench = _benchmark(ctx.work / "bench")
    outputs = ctx.work / "outputs"
    shutil.copytree(bench / "LQ", outputs)
    folder = ["method=folder", f"method.target.root={outputs}"]
    assert _eval(ctx, bench, *folder) == 0
    save_image(torch.zeros(3, 16, 16), outputs / "d1" / "noise" / "a.png", overwrite=True)  # "another model"
    return _eval(ctx, bench, *folder)


# ----------------------------------------------------------------------------------- restore
def _restore(*argv: str) -> int:
    return _exit_code(lambda: load_script("restore").main([*argv, "--no-progress", "--device", "cpu"]))


def _photo(path: Path, size=(24, 20)) -> Path:
    save_image(torch.rand(3, *size, generator=torch.Generator().manual_seed(1)), path)
    return path


def restore_empty_folder(ctx: Ctx) -> int:
    (ctx.work / "empty").mkdir()
    return _restore(str(ctx.model), str(ctx.work / "empty"), "--output", str(ctx.work / "out"))


def restore_output_is_a_file(ctx: Ctx) -> int:
    (ctx.work / "out").write_text("not a folder")
    return _restore(str(ctx.model), str(_photo(ctx.work / "a.png")), "--output", str(ctx.work / "out"))


def restore_keeps_an_old_record(ctx: Ctx) -> int:
    (ctx.work / "out").mkdir()
    (ctx.work / "out" / "a.json").write_text("{}")
    code = _restore(str(ctx.model), str(_photo(ctx.work / "a.png")), "--output", str(ctx.work / "out"), "--trajectory")
    assert (ctx.work / "out" / "a.json").read_text() == "{}"
    return code


def restore_bad_loop_setting(ctx: Ctx) -> int:
    model = ctx.work / "model"
    shutil.copytree(ctx.model, model)
    config = json.loads((model / "rar_config.json").read_text()) | {"max_rounds": "3"}
    (model / "rar_config.json").write_text(json.dumps(config))
    return _restore(str(model), str(_photo(ctx.work / "a.png")), "--output", str(ctx.work / "out"))


def _model_copy(ctx: Ctx) -> Path:
    model = ctx.work / "model"
    shutil.copytree(ctx.model, model)
    return model


def _model_index_names(ctx: Ctx, subfolder: str) -> int:
    model = _model_copy(ctx)
    shutil.copytree(model / "text_adapter", ctx.work / "elsewhere" / "text_adapter")  # loadable, outside the folder
    index = json.loads((model / "model_index.json").read_text())
    index["text_adapter"][1] = subfolder
    (model / "model_index.json").write_text(json.dumps(index))
    return _restore(str(model), str(_photo(ctx.work / "a.png")), "--output", str(ctx.work / "out"))


def model_index_dotdot(ctx: Ctx) -> int:
    return _model_index_names(ctx, "../elsewhere/text_adapter")


def model_index_absolute(ctx: Ctx) -> int:
    return _model_index_names(ctx, str(ctx.work / "elsewhere" / "text_adapter"))


def model_corrupt_weights(ctx: Ctx) -> int:
    model = _model_copy(ctx)
    weights = model / "text_adapter" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return _restore(str(model), str(_photo(ctx.work / "a.png")), "--output", str(ctx.work / "out"))


def model_corrupt_uir_weights(ctx: Ctx) -> int:
    model = _model_copy(ctx)
    weights = next((model / "uir").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    return _restore(str(model), str(_photo(ctx.work / "a.png")), "--output", str(ctx.work / "out"))


def restore_image_over_the_largest_side(ctx: Ctx) -> int:
    code = _restore(str(ctx.model), str(_photo(ctx.work / "big.png", size=(300, 40))), "--output", str(ctx.work / "out"))
    assert (ctx.work / "out" / "big.png").is_file()
    return code


def restore_palette_and_truncated(ctx: Ctx) -> int:
    folder = ctx.work / "in"
    folder.mkdir()
    Image.fromarray(np.arange(240, dtype=np.uint8).reshape(12, 20)).convert("P").save(folder / "palette.png")
    _photo(folder / "whole.png")
    data = (folder / "whole.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.png").write_text("not an image")
    code = _restore(str(ctx.model), str(folder), "--output", str(ctx.work / "out"))
    assert sorted(p.name for p in (ctx.work / "out").iterdir()) == ["palette.png", "whole.png"]
    return code


def degrade_non_contiguous(ctx: Ctx) -> int:
    hwc = np.random.default_rng(0).random((16, 12, 3), dtype=np.float32)
    img = torch.from_numpy(hwc).permute(2, 0, 1)[None]
    for seed in range(8):  # Poisson noise is drawn for some seeds
        degrade(img, ["noise"], torch.Generator().manual_seed(seed))
    return 0


# name, case, exit code, message (regex on stderr+stdout; "" = none required), before the fix
CASES = [
    ("train overwrite=true", overwrite_starts_over, 0, "", "old checkpoints kept, new ones rotated away"),
    ("train resume of another stage's run", resume_of_another_stage, 2, r"holds a run of stage 'joint', not 'uir'",
     "adopted the other run"),
    ("train bad lr writes nothing", failed_start_writes_nothing, 2, r"phase 'main': the optimizer rejects",
     "traceback; folder locked"),
    ("train tiny stand-ins not built", missing_pretrained_folder, 2, r"(autoencoder|conditioner).pretrained=.*no such folder",
     "'Repo id must be in the form'; folder locked"),
    ("train init_from a run of another stage", init_from_wrong_stage, 2,
     r"init_from=.*\(a 'lqa_align' run\) holds weights for \['lqa'\], none of this stage's modules", "0 tensors, exit 0"),
    ("train init_from a run on another autoencoder", init_from_another_autoencoder, 2,
     r"init_from=.* was trained on another autoencoder \(pretrained: .*pass autoencoder.pretrained=",
     "trained on in another latent space, exit 0"),
    ("train init_from corrupt weights", init_from_corrupt_weights, 2,
     r"model/uir/weights.safetensors: not a readable safetensors file", "traceback without the file"),
    ("train interrupted by SIGTERM", interrupted_run_exits_nonzero, 143, r"interrupted: checkpointed", "exit 0"),
    ("train corrupt latest checkpoint", corrupt_latest_checkpoint_falls_back, 0, "", "traceback, no fall-back"),
    ("train latest checkpoint lacks RNG state", missing_rng_state_falls_back, 0, "", "INFO line, RNG not restored"),
    ("train every checkpoint corrupt", every_checkpoint_corrupt, 2, r"no checkpoint in .* loads: step_0000002",
     "traceback"),
    ("eval manifest lq with ..", manifest_escapes_with_dotdot, 2, r"manifest.json: item 'a.png' lq .* leaves",
     "overwrote the file outside, exit 0"),
    ("eval manifest absolute lq", manifest_absolute_path, 2, r"manifest.json: item 'a.png' lq .* leaves",
     "read/wrote outside"),
    ("eval resume with a changed model", eval_resume_with_changed_model, 2, r"contents of method.target.root=.* changed",
     "mixed two models, exit 0"),
    ("restore empty folder", restore_empty_folder, 2, r"^error: no image files in", "traceback"),
    ("restore --output is a file", restore_output_is_a_file, 2, r"--output .* is a file", "traceback"),
    ("restore existing <name>.json", restore_keeps_an_old_record, 1, r"a.json exists .*--overwrite", "rewritten"),
    ("restore bad rar_config.json value", restore_bad_loop_setting, 2, r"rar_config.json: max_rounds must be int",
     "Python type error"),
    ("restore model_index.json naming ../..", model_index_dotdot, 2,
     r"model_index.json: component 'text_adapter' .* leaves", "loaded weights from outside the folder"),
    ("restore model_index.json naming an absolute path", model_index_absolute, 2,
     r"model_index.json: component 'text_adapter' .* leaves", "loaded weights from outside the folder"),
    ("restore corrupt module weights", model_corrupt_weights, 2,
     r"text_adapter/model.safetensors: not a readable safetensors file", "raw SafetensorError, no file name"),
    ("restore corrupt diffusers weights", model_corrupt_uir_weights, 2, r"model/uir: cannot load component 'uir'",
     "raw traceback"),
    ("restore image over the model's largest side", restore_image_over_the_largest_side, 0, r"restored 1 of 1",
     "refused (> 256 px)"),
    ("restore palette + truncated + non-image", restore_palette_and_truncated, 1,
     r"skipping .*notes.png.*\n.*skipping .*truncated.png|skipping .*truncated.png", "(already worked)"),
    ("degrade non-contiguous input", degrade_non_contiguous, 0, "", "view error when Poisson noise drawn"),
]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    depictqa = save_tiny_depictqa(tmp_path_factory.mktemp("depictqa"), phrases=["noise", "haze"])
    pipe = build_tiny_rar_pipeline(depictqa, LoopConfig(max_rounds=1, steps_per_round=1), uir_layers=1,
                                   max_new_tokens=2)
    return pipe.save_pretrained(tmp_path_factory.mktemp("model") / "rar")


@pytest.mark.parametrize("name, case, code, message, before", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, case, code, message, before, tmp_path, model, tiny_dir, capsys, monkeypatch):
    outside = tmp_path / "outside"
    _photo(outside / "victim.png")
    (outside / "notes.txt").write_text("must not change")
    ctx = Ctx(work=tmp_path / "work", outside=outside, model=model, tiny_dir=tiny_dir)
    ctx.work.mkdir()
    before_files = _snapshot(outside)
    args = (ctx, monkeypatch) if "monkeypatch" in case.__code__.co_varnames[: case.__code__.co_argcount] else (ctx,)
    got = case(*args)
    captured = capsys.readouterr()
    text = captured.err + captured.out
    assert got == code, text[-2000:]
    if message:
        assert re.search(message, text, re.MULTILINE), text[-2000:]
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert all("Traceback" not in line for line in text.splitlines()), text[-2000:]
    if code == 2:
        assert len(errors) == 1, text[-2000:]  # one line, naming the problem
    assert _snapshot(outside) == before_files
