"""What the harness evaluates: a named list of (degraded, reference) items grouped for scoring.

A :class:`Benchmark` is the harness's view of any benchmark: items with a unique ``key`` (the
relative path outputs are saved and looked up under) and a ``combination`` — the unit scores are
averaged over first. The headline score is the unweighted mean over the combinations:

- composite sets (AgenticIR groups A/B/C, the bundled samples): one unit per degradation
  combination (``"rain+haze"``); keys ``d2/rain+haze/<name>.png`` as in AgenticIR's results;
- single-degradation and unknown-degradation sets: one unit per dataset; with several datasets
  (``single_average``, the paper's Table 3 average) each dataset counts equally and keys are
  prefixed with the dataset label (``sidd/input/0001_01.png``).

A benchmark config (``configs/benchmark/*.yaml``) has a ``name`` and a ``set`` that builds a
:class:`rar.data.benchmark_sets.BenchmarkSet` (a built/indexed set in AgenticIR's layout, or a
paired dataset via ``BenchmarkSet.from_spec``) or a :class:`Benchmark` (:func:`average_benchmark`
for ``single_average``); :func:`as_benchmark` turns either into a :class:`Benchmark`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from rar.utils.paths import confined

if TYPE_CHECKING:
    from rar.data.benchmark_sets import BenchmarkSet


@dataclass(frozen=True)
class EvalItem:
    """One image to restore and score.

    Attributes:
        key: unique relative path (POSIX) identifying the item; the restored image is saved as
            ``images/<key with .png>`` and the ``folder`` method looks outputs up by it.
        lq: degraded image file. hq: clean reference file.
        combination: the averaging unit (degradation combination, or dataset label).
    """

    key: str
    lq: Path
    hq: Path
    combination: str

    @property
    def output_name(self) -> str:
        """Relative path of the saved output (``key`` with a ``.png`` suffix)."""
        return PurePosixPath(self.key).with_suffix(".png").as_posix()


@dataclass(frozen=True)
class Benchmark:
    """A named, ordered list of items and the combinations they are averaged over.

    Attributes:
        name: benchmark name (``agenticir_groupA``, ``sidd``, ...).
        items: items in evaluation order.
        combinations: averaging units in report order; every item's ``combination`` is one of
            them and each has at least one item.
    """

    name: str
    items: tuple[EvalItem, ...]
    combinations: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "combinations", tuple(self.combinations))
        if not self.items:
            raise ValueError(f"benchmark {self.name!r} has no items")
        seen: dict[str, str] = {}
        for item in self.items:
            confined("images", item.output_name, f"benchmark {self.name!r}", "item key")  # outputs stay in the run
            if item.output_name in seen:
                raise ValueError(f"benchmark {self.name!r}: items {seen[item.output_name]!r} and {item.key!r} "
                                 f"would share the output file {item.output_name}")
            seen[item.output_name] = item.key
        used = {item.combination for item in self.items}
        unknown, empty = used - set(self.combinations), set(self.combinations) - used
        if unknown or empty:
            raise ValueError(f"benchmark {self.name!r}: items use undeclared combinations {sorted(unknown)} "
                             f"or declared combinations have no items {sorted(empty)}")

    def __len__(self) -> int:
        return len(self.items)

    def shard(self, index: int, num_shards: int) -> tuple[EvalItem, ...]:
        """Items of shard ``index`` of ``num_shards``: every ``num_shards``-th item from ``index``
        (strided, so each shard sees every combination)."""
        if num_shards < 1 or not 0 <= index < num_shards:
            raise ValueError(f"shard index must be in [0, {num_shards}), got index={index}, num_shards={num_shards}")
        return self.items[index::num_shards]

    def head(self, per_combination: int) -> Benchmark:
        """The first ``per_combination`` items of each combination (quick smoke runs)."""
        if per_combination < 1:
            raise ValueError(f"per_combination must be >= 1, got {per_combination}")
        counts: dict[str, int] = {}
        kept = []
        for item in self.items:
            counts[item.combination] = counts.get(item.combination, 0) + 1
            if counts[item.combination] <= per_combination:
                kept.append(item)
        return Benchmark(self.name, tuple(kept), self.combinations)


def from_benchmark_set(name: str, benchmark_set: BenchmarkSet) -> Benchmark:
    """A :class:`~rar.data.benchmark_sets.BenchmarkSet` as a benchmark, one unit per combination.

    Keys are the LQ paths relative to ``<root>/LQ`` (``d2/rain+haze/<name>.png``), or to the root
    for files outside ``LQ/`` (paired datasets: the pair name); combinations keep the set's order.
    """
    root = Path(benchmark_set.root)
    items = tuple(
        EvalItem(key=_relative_key(item.lq, root), lq=Path(item.lq), hq=Path(item.hq), combination=item.combination)
        for item in benchmark_set.items
    )
    return Benchmark(name, items, tuple(dict.fromkeys(item.combination for item in items)))


def average_benchmark(name: str, sets: Mapping[str, BenchmarkSet | Benchmark]) -> Benchmark:
    """Several sets scored together, one unit per set (labelled by its key in ``sets``).

    Keys are prefixed with the label (``sidd/input/0001_01.png``); the headline score is then the
    unweighted mean over the sets, as in the paper's Table 3 average.
    """
    if not sets:
        raise ValueError(f"benchmark {name!r}: no sets given")
    items = []
    for label, part in sets.items():
        part = as_benchmark(label, part)
        items.extend(EvalItem(key=f"{label}/{i.key}", lq=i.lq, hq=i.hq, combination=label) for i in part.items)
    return Benchmark(name, tuple(items), tuple(sets))


def as_benchmark(name: str, loaded: Benchmark | BenchmarkSet) -> Benchmark:
    """What a benchmark config's ``set`` builds (a :class:`Benchmark` or a ``BenchmarkSet``) as a
    :class:`Benchmark` named ``name``."""
    if isinstance(loaded, Benchmark):
        return loaded if loaded.name == name else Benchmark(name, loaded.items, loaded.combinations)
    if hasattr(loaded, "items") and hasattr(loaded, "root"):
        return from_benchmark_set(name, loaded)
    raise TypeError(f"benchmark {name!r}: expected a Benchmark or a BenchmarkSet, got {type(loaded).__name__}")


def _relative_key(path: Path, root: Path) -> str:
    path = Path(path)
    for base in (root / "LQ", root):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return path.name
