r"""Restore image files with a RAR model folder (written by ``scripts/export_pipeline.py``).

CPU (the tiny model)::

    HF_HUB_OFFLINE=1 python scripts/restore.py models/tiny data/samples/heldout --output runs/restored \
        --montage --trajectory
    HF_HUB_OFFLINE=1 python scripts/restore.py models/tiny photo.png --output out --max-rounds 1

GPU (a real export)::

    python scripts/restore.py models/sd35m inputs/ --output restored/ --device cuda --dtype bfloat16 \
        --batch-size 4
    python scripts/restore.py models/sd35m inputs/ --output naive/ --pipeline naive --device cuda

Input: one image file or a folder of images (not recursive). Any size (padded to the model's
stride, cropped back; an image over the model's largest side, e.g. 256 px for the tiny model, runs
its rounds on overlapping latent tiles, ``--tile`` sets their side); grayscale, RGBA (composited onto white) and 16-bit files are converted as
``rar/utils/image_io.py`` documents. Output: ``<output>/<name>.png`` (8-bit RGB), with
``--trajectory`` ``<name>.json`` (rounds, LQA texts, comparison probabilities, seconds) and with
``--montage`` ``<name>_montage.png`` (input | each round's output, labelled | final). Images of
equal size are batched (``--batch-size``). An unreadable file is reported and skipped; the exit
code is 1 if any file failed. Existing outputs are skipped unless ``--overwrite``: an image whose
``<name>.png`` exists is not restored again, and no other output file (``<name>.json``,
``<name>_montage.png``) is ever replaced without it. A bad argument or model folder is one
``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from rar.baselines import NaivePipeline
from rar.pipeline import RARPipeline, RestoreResult
from rar.pipeline.config import STOP_RULES
from rar.pipeline.fast_paths import ATTENTION_BACKENDS, AUTOCAST_DTYPES
from rar.pipeline.montage import round_montage
from rar.pipeline.prompts import PROMPT_POOLS
from rar.pipeline.tiling import Tiling
from rar.utils.cli_errors import one_line_errors
from rar.utils.image_io import ImageLoadError, list_images, load_image, save_image

LOOP_FLAGS = {"max_rounds": int, "steps_per_round": int, "assess_every": int, "threshold": float,
              "first_threshold": float, "seed": int}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="RAR model folder (model_index.json)")
    parser.add_argument("input", type=Path, help="an image file or a folder of images")
    parser.add_argument("--output", type=Path, default=Path("restored"), help="output folder (default: restored)")
    parser.add_argument("--montage", action="store_true", help="also write <name>_montage.png per image")
    parser.add_argument("--trajectory", action="store_true", help="also write <name>.json per image")
    parser.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda | cuda:N")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: as saved)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per loop call (equal sizes only)")
    parser.add_argument("--pipeline", choices=("rar", "naive"), default="rar",
                        help="rar (latent loop) or naive (pixel IQA -> text encoders; needs them in the folder)")
    parser.add_argument("--tile", type=int, default=None,
                        help="restore inputs larger than this many pixels per side in overlapping latent tiles of "
                             "this side (default: only inputs over the model's largest side, in tiles of that side)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs instead of skipping")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    loop = parser.add_argument_group("loop settings (default: the model folder's rar_config.json)")
    for name, kind in LOOP_FLAGS.items():
        loop.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    loop.add_argument("--stop", choices=STOP_RULES, default=None)
    loop.add_argument("--prompt-pool", choices=PROMPT_POOLS, default=None)
    fast = parser.add_argument_group("fast paths (rar/pipeline/fast_paths.py; change speed, not the method)")
    fast.add_argument("--autocast", choices=sorted(AUTOCAST_DTYPES), default=None, help="run under torch.autocast")
    fast.add_argument("--attention", choices=sorted(ATTENTION_BACKENDS), default="auto", help="SDPA kernels allowed")
    fast.add_argument("--compile-uir", action="store_true", help="torch.compile the UIR forward")
    fast.add_argument("--merge-lora", action="store_true", help="fold the LQA's LoRA into the LLM while decoding")
    return parser


def output_names(paths: list[Path]) -> dict[Path, str]:
    """``<stem>`` per input, or ``<stem>_<ext>`` where two inputs share a stem."""
    stems = [p.stem for p in paths]
    return {p: p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in paths}


@dataclass
class Batch:
    """Loaded images of one size waiting to be restored."""

    paths: list[Path] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int] | None:
        return tuple(self.images[0].shape[-2:]) if self.images else None


class Restorer:
    """Runs batches through a pipeline and writes their outputs."""

    def __init__(self, pipe: RARPipeline | NaivePipeline, out: Path, names: dict[Path, str], montage: bool,
                 trajectory: bool, overwrite: bool) -> None:
        self.pipe, self.out, self.names = pipe, out, names
        self.montage, self.trajectory, self.overwrite = montage, trajectory, overwrite

    def run(self, batch: Batch) -> None:
        lq = torch.stack(batch.images)
        result: RestoreResult = self.pipe(lq, return_latents=self.montage)
        size = lq.shape[-2:]
        stage_seconds = {k: v / len(batch.paths) for k, v in result.seconds.items()}
        for i, path in enumerate(batch.paths):
            name = self.names[path]
            traj = result.trajectories[i]
            record_path, montage_path = self.out / f"{name}.json", self.out / f"{name}_montage.png"
            for wanted, extra in ((self.trajectory, record_path), (self.montage, montage_path)):
                if wanted and extra.exists() and not self.overwrite:
                    raise FileExistsError(f"{extra} exists (from an earlier run?); pass --overwrite to replace it")
            save_image(result.images[i], self.out / f"{name}.png", overwrite=self.overwrite)
            if self.trajectory:
                record = {"input": str(path), "size": list(size), **traj.as_dict(),
                          "seconds": sum(stage_seconds.values()), "stage_seconds": stage_seconds}
                record_path.write_text(json.dumps(record, indent=2) + "\n")
            if self.montage:
                detail = None if result.detail is None else result.detail[i]
                rounds = [self.pipe.state_image(r.latent, size, detail) for r in traj.rounds]
                figure = round_montage(lq[i], rounds, traj, result.images[i].cpu())
                save_image(figure, montage_path, overwrite=self.overwrite)


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {choice}: no CUDA device is available")
    return device


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with one_line_errors():
        return restore(args)


def restore(args: argparse.Namespace) -> int:
    os.environ.setdefault("WANDB_MODE", "disabled")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.tile is not None and args.pipeline != "rar":
        raise ValueError("--tile applies to --pipeline rar only")
    if args.input.is_dir():
        paths = list_images(args.input)
    elif args.input.is_file():
        paths = [args.input]
    else:
        raise FileNotFoundError(f"input not found: {args.input}")
    if args.output.exists() and not args.output.is_dir():
        raise FileExistsError(f"--output {args.output} is a file; expected a folder (it is created if missing)")
    settings = {name: getattr(args, name) for name in (*LOOP_FLAGS, "stop", "prompt_pool")}
    settings = {k: v for k, v in settings.items() if v is not None}
    device = resolve_device(args.device)
    cls = RARPipeline if args.pipeline == "rar" else NaivePipeline
    try:
        pipe = cls.from_pretrained(args.model, device=device, dtype=args.dtype, **settings)
        pipe.set_fast_paths({"autocast": args.autocast, "attention": args.attention,
                             "compile_uir": args.compile_uir, "merge_lora": args.merge_lora})
    except (FileNotFoundError, ValueError, TypeError) as error:
        raise ValueError(f"cannot load {args.model}: {error}") from error
    if args.tile is not None:
        if args.tile < pipe.stride:
            raise ValueError(f"--tile must be at least the model's stride ({pipe.stride} px), got {args.tile}")
        pipe.tiling = Tiling(tile=args.tile // pipe.autoencoder.stride)
    args.output.mkdir(parents=True, exist_ok=True)
    names = output_names(paths)
    restorer = Restorer(pipe, args.output, names, args.montage, args.trajectory, args.overwrite)
    failed: list[tuple[Path, str]] = []
    skipped = 0
    pending = Batch()

    def flush() -> None:
        nonlocal pending
        if pending.images:
            try:
                restorer.run(pending)
            except (ValueError, RuntimeError, OSError) as error:  # FileExistsError: an output kept
                failed.extend((p, f"restoration failed: {error}") for p in pending.paths)
                tqdm.write(f"error: restoring {', '.join(map(str, pending.paths))} failed: {error}", file=sys.stderr)
        pending = Batch()

    for path in tqdm(paths, desc="restore", unit="img", disable=args.no_progress):
        if not args.overwrite and (args.output / f"{names[path]}.png").exists():
            skipped += 1
            continue
        try:
            image = load_image(path)
        except (ImageLoadError, FileNotFoundError, OSError) as error:
            failed.append((path, str(error)))
            tqdm.write(f"error: skipping {path}: {error}", file=sys.stderr)
            continue
        if pending.size is not None and (pending.size != tuple(image.shape[-2:]) or len(pending.images) >= args.batch_size):
            flush()
        pending.paths.append(path)
        pending.images.append(image)
        if len(pending.images) >= args.batch_size:
            flush()
    flush()
    done = len(paths) - len(failed) - skipped
    print(f"restored {done} of {len(paths)} images into {args.output}"
          + (f"; skipped {skipped} existing (use --overwrite)" if skipped else "")
          + (f"; {len(failed)} failed" if failed else ""))
    for path, reason in failed:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
