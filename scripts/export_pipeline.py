r"""Export a training run as a RAR model folder (``model_index.json`` + components + ``rar_config.json``).

CPU (the tiny experiment; run from the repository root, where the run's relative paths resolve)::

    HF_HUB_OFFLINE=1 python scripts/export_pipeline.py run_dir=runs/tiny/joint out=models/tiny
    HF_HUB_OFFLINE=1 python scripts/export_pipeline.py run_dir=runs/tiny/uir out=runs/tiny/rar_fixed \
        rar=fixed max_rounds=2 include_conditioner=true overwrite=true

Cluster (a real run; LoRA folded into the LLaMA weights, SD3.5 text encoders included for the naive pipeline)::

    python scripts/export_pipeline.py run_dir=runs/sd35m/joint out=models/sd35m lora=merged \
        include_conditioner=true

A UIR trained on text conditions (``condition=text``, paper Table 4 "Text" rows) has no text
adapter and its run no LQA: the folder takes the LQA of another run and the run's text encoders,
for ``method=naive`` ("Text, Pixel") and ``method=text_latent`` ("Text, Latent")::

    HF_HUB_OFFLINE=1 python scripts/export_pipeline.py run_dir=runs/abl_text_condition/uir \
        lqa_from=runs/tiny/lqa_finetune out=models/abl_text_condition

The tiny model: a UIR taught on the text encoders' embedding of the true degradation text, with
the LQA and the text adapter of a ``cond_align`` run (the adapter maps the LQA's answer into that
embedding), exported as a RAR folder (no text encoders)::

    HF_HUB_OFFLINE=1 python scripts/export_pipeline.py run_dir=runs/tiny/uir \
        lqa_from=runs/tiny/cond_align adapter_from=runs/tiny/cond_align out=models/tiny

A UIR trained without a condition (``condition=none``) runs in the same RAR loop with an all-zero
condition (``ZeroTextAdapter``): the LQA of ``lqa_from`` still assesses and runs the stop rule::

    HF_HUB_OFFLINE=1 python scripts/export_pipeline.py run_dir=runs/tiny_none/uir \
        lqa_from=runs/tiny/lqa_finetune out=models/tiny_none

The run is rebuilt from its ``config.yaml`` with ``rar.training.build.build_stage`` and its
``model/<child>/weights.safetensors`` loaded on top (``init_from`` semantics); ``lqa_from`` is
rebuilt the same way and its ``lqa`` taken, ``adapter_from`` likewise for its ``text_adapter``. The
result must hold ``autoencoder``, ``uir``, ``lqa`` and a ``text_adapter`` (a ``joint`` run, ``uir``
with ``condition=lqa``, or ``adapter_from``) or the text encoders (``condition=text``, which always
includes them). Loop settings come from ``configs/rar/<rar>.yaml`` plus single overrides.

Arguments (``key=value``): ``run_dir`` (required), ``out`` (required), ``lqa_from`` (a run holding the
LQA, for runs without one), ``adapter_from`` (a run holding the text adapter, for a ``condition=text``
run), ``rar`` (default ``default``), ``lora`` (``adapter`` | ``merged``), ``include_conditioner`` (false),
``overwrite`` (false), and any loop setting of ``configs/rar/default.yaml`` (``max_rounds=4``, ``stop=fixed``, ...).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rar.lqa.text_adapter import ZeroTextAdapter
from rar.pipeline import LoopConfig, RARPipeline
from rar.pipeline.model_folder import write_model_folder
from rar.training.build import build_modules, build_stage
from rar.training.checkpoint import git_sha

log = logging.getLogger("export_pipeline")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OPTIONS = {"run_dir": None, "out": None, "lqa_from": None, "adapter_from": None, "rar": "default", "lora": "adapter",
           "include_conditioner": False, "overwrite": False}


def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    """Split ``key=value`` arguments into this script's options and loop-setting overrides."""
    options, overrides = dict(OPTIONS), []
    for arg in argv:
        key, sep, _ = arg.partition("=")
        if not sep:
            raise SystemExit(f"arguments are key=value, got {arg!r} (see the docstring: python {sys.argv[0]} --help)")
        if key in options:
            options[key] = OmegaConf.from_dotlist([arg])[key]
        else:
            overrides.append(arg)
    missing = [k for k in ("run_dir", "out") if options[k] is None]
    if missing:
        raise SystemExit(f"missing required arguments: {', '.join(f'{k}=...' for k in missing)}")
    return options, overrides


def loop_config(preset: str, overrides: list[str]) -> LoopConfig:
    """``configs/rar/<preset>.yaml`` with ``overrides`` (``max_rounds=4``...) as a :class:`LoopConfig`."""
    if not (CONFIGS / "rar" / f"{preset}.yaml").is_file():
        choices = sorted(p.stem for p in (CONFIGS / "rar").glob("*.yaml"))
        raise SystemExit(f"rar={preset}: no configs/rar/{preset}.yaml; choose one of {choices}")
    with initialize_config_dir(config_dir=str(CONFIGS / "rar"), version_base="1.3"):
        cfg = compose(config_name=preset, overrides=overrides)
    return LoopConfig().replace(**OmegaConf.to_container(cfg, resolve=True))


def rebuild(run_dir: Path) -> tuple[DictConfig, dict[str, nn.Module]]:
    """The run's resolved config and its stage's modules with the run's ``model/`` weights loaded."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run directory (no config.yaml)")
    cfg = OmegaConf.load(config_path)
    cfg.init_from = str(run_dir)
    if "val_dataset" in cfg.stage.target:
        cfg.stage.target.val_dataset = None  # not needed to export, and its data may be absent here
    stage, loaded = build_stage(cfg)
    log.info("rebuilt stage %s from %s (%d tensors from model/)", cfg.stage.name, run_dir, len(loaded))
    return cfg, dict(stage.named_children())


def export(run_dir: Path, out: Path, config: LoopConfig, lora: str = "adapter", include_conditioner: bool = False,
           overwrite: bool = False, lqa_from: Path | None = None, adapter_from: Path | None = None) -> Path:
    """Rebuild the run's modules (the LQA from ``lqa_from``, the text adapter from ``adapter_from`` when
    given) and write the model folder:
    through :class:`RARPipeline` when the run has a text adapter, else with the text encoders."""
    cfg, modules = rebuild(run_dir)
    source = {"run_dir": str(run_dir), "stage": str(cfg.stage.name), "git_sha": git_sha()}
    donors: dict[Path, dict[str, nn.Module]] = {}  # one rebuild when lqa_from and adapter_from are the same run

    def donor(path: Path) -> dict[str, nn.Module]:
        if path not in donors:
            donors[path] = rebuild(path)[1]
        return donors[path]

    if lqa_from is not None:
        if "lqa" in modules:
            raise ValueError(f"{run_dir} holds its own LQA; lqa_from is for runs without one (condition=text)")
        modules["lqa"] = donor(lqa_from).get("lqa")
        if modules["lqa"] is None:
            raise ValueError(f"lqa_from={lqa_from} holds no LQA (use an lqa_finetune, uir or joint run)")
        source["lqa_from"] = str(lqa_from)
    if adapter_from is not None:
        if cfg.get("condition") != "text":
            raise ValueError(f"adapter_from is for a condition=text run (the UIR taught on the text encoders' "
                             f"embedding); {run_dir} has condition={cfg.get('condition')}")
        modules["text_adapter"] = donor(adapter_from).get("text_adapter")
        if modules["text_adapter"] is None:
            raise ValueError(f"adapter_from={adapter_from} holds no text adapter (use a cond_align run)")
        source["adapter_from"] = str(adapter_from)
    if cfg.get("condition") == "none":  # an unconditioned UIR: the loop's condition is all zeros, as in training
        if "lqa" not in modules:
            raise ValueError(f"{run_dir} is a condition=none run: give lqa_from=<a run with the LQA> for the loop's "
                             "assessments and stop rule")
        uir = modules["uir"]
        modules["text_adapter"] = ZeroTextAdapter(modules["lqa"].hidden_size, int(cfg.stage.target.condition.seq_len),
                                                  uir.joint_attention_dim, uir.pooled_projection_dim)
    if "text_adapter" not in modules:  # a text-conditioned UIR: the folder carries the text encoders instead
        if "lqa" not in modules or "conditioner" not in modules:
            raise ValueError(f"{run_dir} has modules {sorted(modules)}: a model folder needs the LQA and a text adapter "
                             "(a joint run or a uir run with condition=lqa), or the text encoders (condition=text) "
                             "plus lqa_from=<a run with the LQA>")
        parts = {name: modules[name] for name in ("autoencoder", "uir", "lqa", "conditioner")}
        return write_model_folder(out, parts, config, overwrite=overwrite, source=source, lora=lora)
    pipe = RARPipeline.from_modules(modules, config)
    conditioner = None
    if include_conditioner:
        conditioner = modules.get("conditioner")
        if conditioner is None:
            conditioner = build_modules(cfg, ["conditioner"])["conditioner"]
    return pipe.save_pretrained(out, lora=lora, conditioner=conditioner, overwrite=overwrite, source=source)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("WANDB_MODE", "disabled")
    options, overrides = parse_args(argv)
    config = loop_config(str(options["rar"]), overrides)
    lqa_from, adapter_from = (None if options[k] is None else Path(str(options[k]))
                              for k in ("lqa_from", "adapter_from"))
    out = export(Path(str(options["run_dir"])), Path(str(options["out"])), config, lora=str(options["lora"]),
                 include_conditioner=bool(options["include_conditioner"]), overwrite=bool(options["overwrite"]),
                 lqa_from=lqa_from, adapter_from=adapter_from)
    print(f"wrote {out} (loop: {config.as_dict()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
