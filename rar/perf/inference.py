"""Inference latency of a restoration pipeline, split by loop stage.

A batch of ``resolution × resolution`` photos goes through ``pipe`` ``repeats`` times after
``warmup`` untimed calls (compilation, caches, allocator). The pipeline's own stage clock
(:class:`rar.core.timing.StageClock`, CUDA-synchronised at every section boundary) gives the
split into preprocess, encode, assess, restore, compare and decode; the wall time of the whole
call gives the latency per image and images/s. One more, untimed call runs under
``torch.utils.flop_counter.FlopCounterMode`` (every matmul, convolution and attention kernel the
pipeline dispatched, LQA decoding and the VAE included) for the model FLOPs per image, and so the
inference MFU against the device's dense peak (:mod:`rar.perf.flops`; None on a CPU).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from rar.core.outputs import STAGES
from rar.core.timing import synchronize
from rar.perf.degradations import sample_photo
from rar.perf.flops import mfu, peak_flops
from rar.pipeline.base import InferencePipeline
from rar.pipeline.fast_paths import AUTOCAST_DTYPES


@dataclass
class InferenceBench:
    """One pipeline at one batch size.

    Attributes:
        batch, resolution: images per call and their side in pixels.
        seconds_per_image: per stage (``STAGES``), wall seconds per image (batch time / batch).
        latency_per_image: wall seconds of a call divided by ``batch``.
        images_per_second: ``batch`` / wall seconds of a call.
        rounds: mean rounds per image.
        seconds_per_megapixel: ``latency_per_image`` per million input pixels.
        tiles: latent tiles per image (1: the model takes the image whole; :mod:`rar.pipeline.tiling`).
        peak_memory_bytes: ``torch.cuda.max_memory_allocated`` over the timed calls (None on CPU).
        flops_per_image: model FLOPs of one call (counted) divided by ``batch``.
        mfu: ``flops_per_image / latency_per_image / peak``; None where the peak is unknown.
    """

    batch: int
    resolution: int
    seconds_per_image: dict[str, float]
    latency_per_image: float
    images_per_second: float
    rounds: float
    seconds_per_megapixel: float
    tiles: int
    peak_memory_bytes: int | None
    flops_per_image: float | None = None
    mfu: float | None = None



def bench_inference(
    pipe: InferencePipeline, batch: int, resolution: int, repeats: int = 3, warmup: int = 1,
) -> InferenceBench:
    """Time ``pipe(lq)`` on ``batch`` photos of side ``resolution`` (see the module docstring)."""
    if batch < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch >= 1, repeats >= 1, warmup >= 0; got {batch}, {repeats}, {warmup}")
    device = pipe.device
    lq = sample_photo(resolution, batch, torch.device("cpu"))
    for _ in range(warmup):
        pipe(lq)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stages = dict.fromkeys(STAGES, 0.0)
    rounds = 0
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        result = pipe(lq)
        for name, seconds in result.seconds.items():
            stages[name] = stages.get(name, 0.0) + seconds
        rounds += sum(len(t.rounds) for t in result.trajectories)
    synchronize(device)
    wall = (time.perf_counter() - start) / repeats
    n = batch * repeats
    flops = count_flops(pipe, lq) / batch
    return InferenceBench(
        batch=batch, resolution=resolution,
        seconds_per_image={name: seconds / n for name, seconds in stages.items()},
        latency_per_image=wall / batch, images_per_second=batch / wall, rounds=rounds / n,
        seconds_per_megapixel=wall / batch / (resolution * resolution / 1e6), tiles=_tiles(pipe, resolution),
        peak_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        flops_per_image=flops, mfu=mfu(flops, wall / batch, peak_flops(device, pipe_dtype(pipe))),
    )


def count_flops(pipe: InferencePipeline, lq: torch.Tensor) -> float:
    """Model FLOPs of ``pipe(lq)``, counted by ``FlopCounterMode`` on one untimed call."""
    counter = FlopCounterMode(display=False)
    # the counter's module tracker hooks every input that requires grad, and modules here receive
    # parameters as inputs (the LQA's queries): freeze them for the count
    trainable = [p for p in pipe.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        with counter, torch.compiler.set_stance("force_eager"):  # a compiled UIR counts as its eager ops
            pipe(lq)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return float(counter.get_total_flops())


def pipe_dtype(pipe: InferencePipeline) -> torch.dtype:
    """The dtype the peak rate is read for: the autocast dtype if set, else the UIR's weights'."""
    autocast = getattr(pipe.fast, "autocast", None)
    return AUTOCAST_DTYPES[autocast] if autocast else next(pipe.uir.parameters()).dtype


def _tiles(pipe: InferencePipeline, resolution: int) -> int:
    """Latent tiles per ``resolution``-pixel image (1 for pipelines that do not tile)."""
    if not hasattr(pipe, "tile_grid"):
        return 1
    side = -(-resolution // pipe.stride) * pipe.stride // pipe.autoencoder.stride
    return pipe.tile_grid(side, side).count
