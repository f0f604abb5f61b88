"""Synthesis throughput (images/s) of AgenticIR's degradation combinations, per group.

    python scripts/bench_degradations.py                                  # CPU: 512x512, batch 8, 3 timed runs
    python scripts/bench_degradations.py --device cuda --repeats 10       # on a GPU node
    python scripts/bench_degradations.py --singles --size 256 --batch 4   # also each single degradation

Each combination of ``AGENTICIR_GROUPS`` is applied to a batch of identical ``size × size``
photos (scikit-image's astronaut, or a smooth synthetic image without scikit-image) with a
seeded generator, after one untimed warm-up call. The table lists images/s and ms/image per
combination and, per group, images/s over all of its combinations (total images / total time).
Haze uses the synthetic depth fallback (no depth maps here).
"""

from __future__ import annotations

import argparse
import time

import torch

from rar.degradations import AGENTICIR_DEGRADATIONS, AGENTICIR_GROUPS, combination_name, degrade, imresize


def _photo(size: int, batch: int, device: torch.device) -> torch.Tensor:
    try:
        from skimage import data

        img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
        img = imresize(img, size=(size, size)).clamp(0, 1)
    except ImportError:
        y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        img = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * torch.sin(12 * x + 8 * y)])[None]
    img = (img * 255).round() / 255
    return img.expand(batch, -1, -1, -1).contiguous().to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_combination(img: torch.Tensor, names: tuple[str, ...], repeats: int, seed: int) -> float:
    """Seconds for ``repeats`` calls of ``degrade`` on ``img`` (after one warm-up call)."""
    generator = torch.Generator(device=img.device).manual_seed(seed)
    degrade(img, names, generator)
    _sync(img.device)
    start = time.perf_counter()
    for _ in range(repeats):
        degrade(img, names, generator)
    _sync(img.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="square image side (default 512)")
    parser.add_argument("--batch", type=int, default=8, help="images per degrade() call (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per combination (default 3)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--singles", action="store_true", help="also time each single degradation")
    args = parser.parse_args()

    device = torch.device(args.device)
    img = _photo(args.size, args.batch, device)
    print(
        f"device={device} threads={torch.get_num_threads()} size={args.size} batch={args.batch} repeats={args.repeats}"
    )
    rows: list[tuple[str, str, float]] = []
    groups = dict(AGENTICIR_GROUPS)
    if args.singles:
        groups["single"] = [(n,) for n in AGENTICIR_DEGRADATIONS]
    summary = {}
    for group, combos in groups.items():
        total_time = 0.0
        for names in combos:
            seconds = time_combination(img, names, args.repeats, args.seed)
            total_time += seconds
            rows.append((group, combination_name(names), args.batch * args.repeats / seconds))
        summary[group] = args.batch * args.repeats * len(combos) / total_time

    width = max(len(r[1]) for r in rows)
    print(f"{'group':<7} {'combination':<{width}} {'images/s':>9} {'ms/image':>9}")
    for group, name, ips in rows:
        print(f"{group:<7} {name:<{width}} {ips:>9.2f} {1000 / ips:>9.1f}")
    print()
    for group, ips in summary.items():
        print(f"group {group}: {ips:.2f} images/s ({1000 / ips:.1f} ms/image) over {len(groups[group])} combinations")


if __name__ == "__main__":
    main()
