"""Prepare data: sample photos, seeded composite benchmark sets, dataset checks.

CPU (any machine; nothing here needs a GPU)::

    python scripts/prepare_data.py task=samples overwrite=true   # regenerate data/samples/ from scikit-image
    python scripts/prepare_data.py task=build                    # data/benchmarks/samples (held-out photos, seed 0)
    python scripts/prepare_data.py task=dead_leaves              # data/dead_leaves: seeded procedural training images
    python scripts/prepare_data.py task=build build.source=$RAR_DATA/MiO100/HQ \\
        'build.depth=$RAR_DATA/MiO100/depth/{stem}/predict_depth.mat' build.out=$RAR_DATA/benchmarks/mio100
    python scripts/prepare_data.py task=index index.root=$RAR_DATA/AgenticIR   # released LQ set -> manifest
    python scripts/prepare_data.py task=verify verify.root=data/benchmarks/samples
    python scripts/prepare_data.py task=check dataset=gopro_test # one dataset's layout
    python scripts/prepare_data.py task=check_all                # every configs/dataset/*.yaml
    python scripts/prepare_data.py task=sidd_val sidd_val.mat_dir=$RAR_DATA/SIDD

On a cluster: the same commands on a CPU node, e.g. ``srun -c 8 python scripts/prepare_data.py
task=build ...``; the outputs do not depend on the machine's thread count (per-item seeding).

Nothing is overwritten unless ``overwrite=true``. The external data root is ``$RAR_DATA``
(default ``data/external``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rar.data.benchmark_sets import BenchmarkSet, build_composite_set, index_released_set
from rar.data.dead_leaves import write_dead_leaves
from rar.data.samples import write_samples
from rar.data.sidd import export_sidd_validation
from rar.data.specs import DatasetLayoutError

log = logging.getLogger("prepare_data")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def samples(cfg: DictConfig) -> None:
    written = write_samples(cfg.samples.out, overwrite=cfg.overwrite)
    log.info("wrote %d sample images and ATTRIBUTION.md under %s", len(written), cfg.samples.out)


def build(cfg: DictConfig) -> None:
    b = cfg.build
    groups = OmegaConf.to_container(b.groups, resolve=True) if b.groups is not None else None
    names = list(b.names) if b.names is not None else None
    result = build_composite_set(
        b.source, b.out, seed=b.seed, groups=groups, depth=b.depth, names=names, overwrite=cfg.overwrite
    )
    log.info("built %d LQ images (%d groups, seed %d) in %s", len(result.items), len(result.groups), b.seed, b.out)


def dead_leaves(cfg: DictConfig) -> None:
    d = cfg.dead_leaves
    written = write_dead_leaves(d.out, d.count, size=d.size, seed=d.seed, overwrite=cfg.overwrite)
    log.info("%d dead-leaves images (seed %d) in %s", len(written), d.seed, d.out)


def index(cfg: DictConfig) -> None:
    result = index_released_set(cfg.index.root, overwrite=cfg.overwrite)
    log.info("indexed %d LQ images in groups %s under %s", len(result.items), result.groups, cfg.index.root)


def verify(cfg: DictConfig) -> None:
    problems = BenchmarkSet.load(cfg.verify.root).verify()
    for problem in problems:
        log.error(problem)
    if problems:
        raise SystemExit(f"{len(problems)} file(s) differ from the manifest in {cfg.verify.root}")
    log.info("every LQ file in %s matches its manifest SHA-256", cfg.verify.root)


def check(cfg: DictConfig) -> None:
    if cfg.get("dataset") is None:
        raise SystemExit("task=check needs a dataset: python scripts/prepare_data.py task=check dataset=<name>")
    spec = hydra.utils.instantiate(cfg.dataset, _convert_="all")
    log.info("%s: %d %s found at %s", spec.name, spec.check(), "pairs" if spec.paired else "images", spec.root)


def check_all(cfg: DictConfig) -> None:
    for path in sorted((CONFIG_DIR / "dataset").glob("*.yaml")):
        spec = hydra.utils.instantiate(OmegaConf.load(path), _convert_="all")
        try:
            log.info("%-16s ok: %d %s", spec.name, spec.check(), "pairs" if spec.paired else "images")
        except DatasetLayoutError as error:
            log.info("%-16s missing: %s", spec.name, str(error).splitlines()[0])


def sidd_val(cfg: DictConfig) -> None:
    count = export_sidd_validation(cfg.sidd_val.mat_dir, cfg.sidd_val.out, overwrite=cfg.overwrite)
    log.info("exported %d SIDD validation pairs to %s", count, cfg.sidd_val.out)


TASKS: dict[str, Callable[[DictConfig], None]] = {
    "samples": samples,
    "build": build,
    "index": index,
    "verify": verify,
    "dead_leaves": dead_leaves,
    "check": check,
    "check_all": check_all,
    "sidd_val": sidd_val,
}


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare_data")
def main(cfg: DictConfig) -> None:
    if cfg.task not in TASKS:
        raise SystemExit(f"unknown task {cfg.task!r}; choose one of {sorted(TASKS)}")
    TASKS[cfg.task](cfg)


if __name__ == "__main__":
    main()
