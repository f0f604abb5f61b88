"""Composite benchmark sets in AgenticIR's layout: build (seeded, with a manifest), index, load.

On-disk layout (AgenticIR's released set uses the same)::

    <root>/HQ/<name>.png
    <root>/LQ/d<k>/<combination>/<name>.png      k = number of degradations,
                                                 combination = e.g. "haze+motion blur+low resolution"
    <root>/manifest.json

``manifest.json`` (format :data:`MANIFEST_FORMAT`) records, per LQ image, its group,
combination, degradation keys, sampled parameters and severity (``labels``), and the SHA-256 of
the LQ file; plus the seed, the source folder and the depth-map pattern. Each (image,
combination) is degraded with its own generator seeded from ``(seed, combination, image name)``,
so building any subset of images or groups reproduces the same files, byte for byte.

- :func:`build_composite_set` synthesises a set from a folder of clean images;
- :func:`index_released_set` writes an index manifest (SHA-256 and combination, no parameters)
  for a folder already in this layout, such as AgenticIR's released LQ set;
- :meth:`BenchmarkSet.load` lists the items for the evaluation harness, filtered by group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch

from rar.data.depth import load_depth
from rar.data.seeding import item_generator
from rar.data.specs import DatasetSpec
from rar.data.synthetic import validate_combinations
from rar.degradations import AGENTICIR_GROUPS, DegradationLabel, combination_name, degrade
from rar.utils.image_io import IMAGE_EXTENSIONS, list_images, load_image, save_image, sha256_file
from rar.utils.paths import confined

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "rar-benchmark-set/1"


@dataclass(frozen=True)
class BenchmarkItem:
    """One degraded test image and its reference.

    Attributes:
        name: image file name (``<stem>.png``), shared by the LQ and HQ files.
        lq: degraded image file (may be 1/4 of the HQ size for low-resolution combinations).
        hq: clean reference file.
        group: benchmark group (``"A"``, ``"B"``, ``"C"``, or a dataset name).
        combination: AgenticIR folder name of the combination, e.g. ``"rain+haze"``.
        degradations: ``DEGRADATIONS`` keys in application order (empty when unknown).
        labels: sampled parameters per degradation (empty for indexed / real sets).
        sha256: SHA-256 of the LQ file as recorded in the manifest (``None`` if not recorded).
    """

    name: str
    lq: Path
    hq: Path
    group: str
    combination: str
    degradations: tuple[str, ...] = ()
    labels: tuple[DegradationLabel, ...] = ()
    sha256: str | None = None


@dataclass(frozen=True)
class BenchmarkSet:
    """A loaded benchmark set: its items plus provenance.

    Attributes:
        root: set folder. kind: ``"built"``, ``"indexed"`` or ``"dataset"``.
        items: items in manifest order (group, combination, name).
        seed: builder seed (``None`` unless built). source: clean-image folder or dataset name.
    """

    root: Path
    kind: str
    items: tuple[BenchmarkItem, ...]
    seed: int | None = None
    source: str | None = None

    @classmethod
    def load(cls, root: str | Path, groups: Sequence[str] | None = None) -> BenchmarkSet:
        """Read ``<root>/manifest.json``; keep only ``groups`` (``None`` = all).

        Raises:
            FileNotFoundError: no manifest (the message gives the commands that make one).
            ValueError: a wrong manifest format or a requested group the set does not have.
        """
        root = Path(root)
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no benchmark manifest at {path}. Build a set with `python scripts/prepare_data.py task=build "
                f"build.source=<clean images> build.out={root}`, or index a released AgenticIR-layout set with "
                f"`python scripts/prepare_data.py task=index index.root={root}`"
            )
        manifest = json.loads(path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path}: expected format {MANIFEST_FORMAT!r}, got {manifest.get('format')!r}")
        items = tuple(_item_from_record(root, record, path) for record in manifest["items"])
        available = sorted({item.group for item in items})
        if groups is not None:
            missing = sorted(set(groups) - set(available))
            if missing:
                raise ValueError(f"benchmark set {root} has no group(s) {missing}; available: {available}")
            items = tuple(item for item in items if item.group in set(groups))
        return cls(root=root, kind=manifest["kind"], items=items, seed=manifest.get("seed"), source=manifest.get("source"))

    @classmethod
    def from_spec(cls, spec: DatasetSpec) -> BenchmarkSet:
        """A paired single-degradation dataset as a one-group set (group = ``spec.name``)."""
        combination = "+".join(spec.degradations) or spec.name
        items = tuple(
            BenchmarkItem(
                name=p.name, lq=p.lq, hq=p.hq, group=spec.name, combination=combination, degradations=spec.degradations
            )
            for p in spec.pairs()
        )
        return cls(root=spec.root, kind="dataset", items=items, source=spec.name)

    @property
    def groups(self) -> list[str]:
        """Group names present, sorted."""
        return sorted({item.group for item in self.items})

    def combinations(self, group: str | None = None) -> list[str]:
        """Combination names (of one group, or all) in first-appearance order."""
        return list(dict.fromkeys(i.combination for i in self.items if group is None or i.group == group))

    def verify(self) -> list[str]:
        """Recompute each LQ file's SHA-256; returns one message per mismatch or missing file."""
        problems = []
        for item in self.items:
            if not item.lq.is_file():
                problems.append(f"missing LQ file {item.lq}")
            elif item.sha256 is not None and sha256_file(item.lq) != item.sha256:
                problems.append(f"SHA-256 mismatch for {item.lq}")
        return problems


def build_composite_set(
    source: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    groups: Mapping[str, Sequence[Sequence[str]]] | None = None,
    depth: str | None = None,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
) -> BenchmarkSet:
    """Synthesise a composite-degradation set from clean images, in AgenticIR's layout.

    Args:
        source: folder of clean images (any format :func:`load_image` reads).
        out: output folder (gets ``HQ/``, ``LQ/`` and ``manifest.json``).
        seed: base seed; each (image, combination) uses ``item_generator(seed, combination, name)``.
        groups: ``{group: [combination, ...]}``, each combination a list of ``DEGRADATIONS`` keys
            in application order; default :data:`AGENTICIR_GROUPS` (16 combinations, A/B/C).
        depth: optional depth-map path pattern with ``{stem}`` (e.g.
            ``.../MiO100/depth/{stem}/predict_depth.mat``); maps are resized to the image size
            (cubic) and feed the haze degradation. Without it haze uses the engine's fallback depth.
        names: build only these image file names from ``source`` (default: all).
        overwrite: replace existing files; otherwise any existing target file is an error
            (checked before anything is written).

    Returns:
        The built set, as :meth:`BenchmarkSet.load` would return it.
    """
    source, out = Path(source), Path(out)
    groups = {g: validate_combinations(c, where=f"group {g}") for g, c in (groups or AGENTICIR_GROUPS).items()}
    images = list_images(source)
    if names is not None:
        unknown = sorted(set(names) - {p.name for p in images})
        if unknown:
            raise ValueError(f"images {unknown} are not in {source}")
        images = [p for p in images if p.name in set(names)]
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        raise ValueError(f"{source} has several images with the same stem; names must be unique without extension")
    jobs = [(g, combo) for g, combos in groups.items() for combo in combos]
    targets = [out / MANIFEST_NAME] + [out / "HQ" / f"{s}.png" for s in stems]
    targets += [out / _lq_relpath(combo, f"{s}.png") for _, combo in jobs for s in stems]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"refusing to overwrite {len(existing)} existing file(s) in {out}, e.g. {existing[0]} (pass overwrite=true)"
        )
    records, hq_hashes = [], {}
    for path in images:
        name = f"{path.stem}.png"
        hq = (load_image(path) * 255).round() / 255  # the 8-bit image that HQ/<name>.png stores
        hq_file = save_image(hq, out / "HQ" / name, overwrite=True)
        hq_hashes[name] = sha256_file(hq_file)
        depth_map = load_depth(depth.format(stem=path.stem), hq.shape[-2:])[None] if depth else None
        for group, combo in jobs:
            combo_name = combination_name(combo)
            degraded = degrade(hq[None], combo, item_generator(seed, combo_name, name), depth=depth_map)
            rel = _lq_relpath(combo, name)
            lq_file = save_image(degraded.lq[0], out / rel, overwrite=True)
            records.append({
                "name": name, "group": group, "combination": combo_name, "degradations": list(combo),
                "labels": [label.to_dict() for label in degraded.labels[0]],
                "lq": rel.as_posix(), "hq": f"HQ/{name}", "sha256": sha256_file(lq_file),
            })
    order = {(g, combination_name(c)): i for i, (g, c) in enumerate(jobs)}
    records.sort(key=lambda r: (order[(r["group"], r["combination"])], r["name"]))
    manifest = {
        "format": MANIFEST_FORMAT, "kind": "built", "seed": seed, "source": str(source), "depth": depth,
        "groups": {g: [combination_name(c) for c in combos] for g, combos in groups.items()},
        "hq": hq_hashes, "items": records,
        "software": {"torch": torch.__version__, "opencv": cv2.__version__},
    }
    _write_manifest(out, manifest)
    return BenchmarkSet.load(out)


def index_released_set(
    root: str | Path,
    *,
    groups: Mapping[str, Sequence[Sequence[str]]] | None = None,
    overwrite: bool = False,
) -> BenchmarkSet:
    """Write an index manifest for a set already in AgenticIR's layout (no manifest of its own).

    Every ``LQ/d<k>/<combination>/<image>`` is recorded with its group (looked up from
    ``groups``, default :data:`AGENTICIR_GROUPS`), combination and SHA-256; parameters are
    unknown, so ``labels`` stay empty. Each LQ image needs ``HQ/`` file of the same stem.

    Raises:
        FileNotFoundError: missing ``LQ/`` / ``HQ/`` folders or HQ files.
        ValueError: a combination folder not in ``groups``, or one under the wrong ``d<k>``.
        FileExistsError: a manifest exists and ``overwrite`` is False.
    """
    root = Path(root)
    groups = {g: validate_combinations(c, where=f"group {g}") for g, c in (groups or AGENTICIR_GROUPS).items()}
    by_name = {combination_name(c): (g, c) for g, combos in groups.items() for c in combos}
    if (root / MANIFEST_NAME).exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file {root / MANIFEST_NAME} (pass overwrite=true)")
    for folder in (root / "LQ", root / "HQ"):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"expected AgenticIR layout <root>/LQ/d<k>/<combination>/*.png and <root>/HQ/*.png; missing {folder}"
            )
    hq_by_stem = {p.stem: p for p in list_images(root / "HQ")}
    records = []
    for combo_dir in sorted(p for p in (root / "LQ").glob("d*/*") if p.is_dir()):
        if combo_dir.name not in by_name:
            raise ValueError(f"unknown combination folder {combo_dir}; known: {sorted(by_name)}")
        group, combo = by_name[combo_dir.name]
        if combo_dir.parent.name != f"d{len(combo)}":
            raise ValueError(f"{combo_dir} holds a {len(combo)}-degradation combination; expected it under d{len(combo)}")
        for lq in sorted(p for p in combo_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            hq = hq_by_stem.get(lq.stem)
            if hq is None:
                raise FileNotFoundError(f"no HQ image for {lq}: expected {root / 'HQ' / lq.stem}.<ext>")
            records.append({
                "name": lq.name, "group": group, "combination": combo_dir.name, "degradations": list(combo),
                "labels": [], "lq": lq.relative_to(root).as_posix(), "hq": hq.relative_to(root).as_posix(),
                "sha256": sha256_file(lq),
            })
    if not records:
        raise FileNotFoundError(f"no LQ images under {root / 'LQ'} (expected LQ/d<k>/<combination>/*.png)")
    manifest = {
        "format": MANIFEST_FORMAT, "kind": "indexed", "seed": None, "source": str(root), "depth": None,
        "groups": {g: [combination_name(c) for c in combos] for g, combos in groups.items()},
        "hq": {p.name: sha256_file(p) for p in hq_by_stem.values()}, "items": records,
    }
    _write_manifest(root, manifest)
    return BenchmarkSet.load(root)


def _lq_relpath(combo: Sequence[str], name: str) -> Path:
    return Path("LQ") / f"d{len(combo)}" / combination_name(combo) / name


def _write_manifest(root: Path, manifest: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")


def _item_from_record(root: Path, record: Mapping, source: Path) -> BenchmarkItem:
    """One manifest record; its ``lq`` and ``hq`` paths must stay inside ``root``."""
    lq, hq = (confined(root, record[key], source, f"item {record.get('name')!r} {key}") for key in ("lq", "hq"))
    return BenchmarkItem(
        name=record["name"], lq=lq, hq=hq, group=record["group"],
        combination=record["combination"], degradations=tuple(record.get("degradations", ())),
        labels=tuple(DegradationLabel.from_dict(d) for d in record.get("labels", ())), sha256=record.get("sha256"),
    )
