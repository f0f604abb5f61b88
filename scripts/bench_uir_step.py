"""Time one `uir` training step (encode, path, UIR forward/backward, AdamW) and report peak memory.

CPU (tiny experiment sizes)::

    python scripts/bench_uir_step.py --uir tiny --autoencoder s2d --batch 16 --size 64

GPU (random-initialised SD3.5 shapes; no weights needed; the cached text condition costs nothing
per step, so a zero condition of the real shape stands in for it)::

    python scripts/bench_uir_step.py --uir sd35_medium --autoencoder sd35 --batch 8 --size 512 \
        --device cuda --dtype bfloat16 --gradient-checkpointing
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from diffusers import AutoencoderKL

from rar.conditioning.sources import ZeroCondition
from rar.training.stages.uir import UIRStage
from rar.uir.autoencoders import KLAutoencoder, SpaceToDepthAutoencoder
from rar.uir.backbones import build_sd3_transformer

SD35_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False,
)


class Batch:
    def __init__(self, lq: torch.Tensor, hq: torch.Tensor) -> None:
        self.lq, self.hq, self.labels = lq, hq, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uir", default="tiny", help="SD3 preset: tiny | sd35_medium | sd35_large")
    p.add_argument("--autoencoder", default="s2d", choices=["s2d", "sd35"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=None, help="condition tokens (default 32 tiny / 333 SD3.5)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", help="autocast dtype: float32 | bfloat16")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    with device:  # initialise the weights on the target device (fast for billions of parameters)
        if args.autoencoder == "s2d":
            ae = SpaceToDepthAutoencoder(4)
        else:
            ae = KLAutoencoder(AutoencoderKL(**SD35_VAE), 1.5305, 0.0609)
        uir = build_sd3_transformer(config=args.uir, gradient_checkpointing=args.gradient_checkpointing)
    seq_len = args.seq_len or (32 if args.uir == "tiny" else 333)
    stage = UIRStage(ae, uir, ZeroCondition(seq_len)).to(device)
    if args.dtype != "float32":
        ae.to(getattr(torch, args.dtype))
    params = [p for p in stage.uir.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    n_params = sum(p.numel() for p in params)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    batch = Batch(x * 0.5, x)
    autocast = torch.autocast(device.type, dtype=getattr(torch, args.dtype), enabled=args.dtype != "float32")

    def step() -> float:
        with autocast:
            loss = stage(batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / args.steps
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU (max allocated)"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process peak)"
    latent = ae.latent_size(args.size, args.size)
    print(
        f"uir={args.uir} ae={args.autoencoder} params={n_params:,} batch={args.batch} image={args.size}px "
        f"latent={ae.latent_channels}x{latent[0]}x{latent[1]} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"gc={args.gradient_checkpointing}: {per_step * 1000:.1f} ms/step, peak {peak}"
    )


if __name__ == "__main__":
    main()
