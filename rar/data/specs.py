"""Dataset specs: where a public dataset lives on disk, what its layout is, where to get it.

A :class:`DatasetSpec` describes one published dataset split (a test set such as GoPro test or
a training corpus such as DIV2K train) as the user downloads it. One YAML per dataset in
``configs/dataset/`` builds it via ``_target_``. The layout is described by a few fields:

- ``scenes``: optional glob (relative to ``root``) of per-scene folders, e.g. GoPro's
  ``test/*``; without it the root is the only scene;
- ``lq_dir`` / ``hq_dir``: folders inside each scene holding the degraded and clean images
  (``lq_dir`` may be a glob such as RESIDE-OTS ``haze/part*``; ``None`` for clean-only sets);
- ``lq_glob``: file-name filter for LQ files (``*NOISY*`` for SIDD);
- ``hq_stem``: ``(regex, replacement)`` that maps an LQ file stem to its HQ stem with
  :func:`re.sub` (SOTS ``0001_0.8_0.2`` -> ``0001``, Raindrop ``0_rain`` -> ``0_clean``); by
  default the stems are equal. HQ files are matched by stem, whatever their extension.

``check()`` and ``pairs()`` fail with :class:`DatasetLayoutError` naming the path they looked at,
the layout they expected and the download URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rar.utils.image_io import IMAGE_EXTENSIONS

_GLOB_CHARS = re.compile(r"[*?\[]")


class DatasetLayoutError(FileNotFoundError):
    """A dataset is missing or does not have its documented layout."""


@dataclass(frozen=True)
class ImagePair:
    """One degraded/clean file pair.

    Attributes:
        name: LQ path relative to the dataset root (unique within the dataset), e.g.
            ``test/GOPR0384_11_00/blur/000001.png``.
        lq: degraded image file.
        hq: clean reference file (same size, or ``scale`` times larger for SR sets).
    """

    name: str
    lq: Path
    hq: Path


@dataclass(frozen=True)
class DatasetSpec:
    """Layout, provenance and licence of one dataset split.

    Attributes:
        name: short id (``gopro_test``).
        root: dataset folder (configs default to ``${oc.env:RAR_DATA,data/external}/<Dataset>``).
        hq_dir: clean-image folder inside each scene (``"."`` = the scene folder itself).
        lq_dir: degraded-image folder (or glob) inside each scene; ``None`` = clean-only set.
        scenes: glob of scene folders relative to ``root``; ``None`` = ``root`` is the scene.
        lq_glob: file-name glob selecting LQ files inside ``lq_dir``.
        hq_stem: ``(pattern, replacement)`` regex mapping an LQ stem to its HQ stem.
        scale: HQ size / LQ size (4 for x4 super-resolution sets, else 1).
        degradations: degradation names the LQ images show (for labels and reports), e.g.
            ``("noise",)``; empty for clean-only sets.
        synthesize: for clean-only test sets, the degradation combination the benchmark
            builder applies to make the LQ side (e.g. ``("noise",)`` for Kodak24).
        depth: optional depth-map path pattern relative to ``root`` with ``{stem}``, e.g.
            ``depth/{stem}/predict_depth.mat`` (MiO100, as AgenticIR ships it).
        expected_count: number of pairs (or clean images) of the published split; ``None``
            skips the count check.
        url: where to download it. paper: citation. licence: terms of use.
        notes: anything else the user must know (conversion steps, subsets).
    """

    name: str
    root: Path
    hq_dir: str
    lq_dir: str | None = None
    scenes: str | None = None
    lq_glob: str = "*"
    hq_stem: tuple[str, str] | None = None
    scale: int = 1
    degradations: tuple[str, ...] = ()
    synthesize: tuple[str, ...] = ()
    depth: str | None = None
    expected_count: int | None = None
    url: str = ""
    paper: str = ""
    licence: str = ""
    notes: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "degradations", tuple(self.degradations))
        object.__setattr__(self, "synthesize", tuple(self.synthesize))
        if self.hq_stem is not None:
            rule = tuple(self.hq_stem)
            if len(rule) != 2:
                raise ValueError(f"dataset {self.name}: hq_stem must be [pattern, replacement], got {self.hq_stem!r}")
            re.compile(rule[0])
            object.__setattr__(self, "hq_stem", rule)
        if self.scale < 1:
            raise ValueError(f"dataset {self.name}: scale must be >= 1, got {self.scale}")

    @property
    def paired(self) -> bool:
        """True when the dataset ships degraded images (``lq_dir`` is set)."""
        return self.lq_dir is not None

    def layout(self) -> str:
        """Human-readable description of the expected on-disk layout."""
        scene = f"{self.scenes}/" if self.scenes else ""
        lines = [f"{self.root}/"]
        if self.lq_dir is not None:
            lines.append(f"  {scene}{_join(self.lq_dir, self.lq_glob)}   (degraded)")
            rule = f"stem re.sub{self.hq_stem!r}" if self.hq_stem else "same stem"
            lines.append(f"  {scene}{_join(self.hq_dir, '<' + rule + '>.*')}   (clean)")
        else:
            lines.append(f"  {scene}{_join(self.hq_dir, '*')}   (clean images)")
        if self.depth:
            lines.append(f"  {self.depth}   (depth map per clean image)")
        if self.expected_count is not None:
            lines.append(f"  {self.expected_count} {'pairs' if self.paired else 'images'} in the published split")
        return "\n".join(lines)

    def check(self) -> int:
        """Verify the dataset is on disk with its layout; returns the pair (or image) count."""
        count = len(self.pairs()) if self.paired else len(self.images())
        if self.expected_count is not None and count != self.expected_count:
            self._fail(f"found {count} {'pairs' if self.paired else 'images'}, expected {self.expected_count}", self.root)
        return count

    def pairs(self) -> list[ImagePair]:
        """All LQ/HQ pairs, sorted by LQ path. Raises if the set is clean-only or misshaped."""
        if self.lq_dir is None:
            raise ValueError(
                f"dataset {self.name} is clean-only (no lq_dir); its degraded side is synthesised "
                f"({'+'.join(self.synthesize) or 'no combination given'}) by "
                "`python scripts/prepare_data.py task=build` — use images() for the clean files"
            )
        pairs = []
        for scene in self._scene_dirs():
            hq_index = _index_by_stem(self._existing_dir(scene / self.hq_dir), self)
            for lq_dir in self._lq_dirs(scene):
                for lq in _image_files(lq_dir, self.lq_glob):
                    stem = re.sub(self.hq_stem[0], self.hq_stem[1], lq.stem) if self.hq_stem else lq.stem
                    hq = hq_index.get(stem)
                    if hq is None:
                        self._fail(f"no clean image with stem {stem!r} for {lq.name}", scene / self.hq_dir)
                    pairs.append(ImagePair(name=lq.relative_to(self.root).as_posix(), lq=lq, hq=hq))
        if not pairs:
            self._fail(f"no degraded images matching {self.lq_glob!r}", self.root / (self.lq_dir or ""))
        return sorted(pairs, key=lambda pair: pair.name)

    def images(self) -> list[Path]:
        """Clean image files (the HQ side), sorted; for paired sets the HQ files of all pairs."""
        if self.lq_dir is not None:
            return sorted({pair.hq for pair in self.pairs()})
        files = [f for scene in self._scene_dirs() for f in _image_files(self._existing_dir(scene / self.hq_dir), "*")]
        if not files:
            self._fail("no clean images", self.root / self.hq_dir)
        return sorted(files)

    def depth_path(self, image: Path) -> Path | None:
        """Depth-map file for a clean image (``None`` when the dataset has no depth maps)."""
        if self.depth is None:
            return None
        path = self.root / self.depth.format(stem=Path(image).stem)
        if not path.is_file():
            self._fail(f"missing depth map for {Path(image).name}", path)
        return path

    def _scene_dirs(self) -> list[Path]:
        root = self._existing_dir(self.root)
        if self.scenes is None:
            return [root]
        scenes = sorted(p for p in root.glob(self.scenes) if p.is_dir())
        if not scenes:
            self._fail(f"no scene folders matching {self.scenes!r}", root)
        return scenes

    def _lq_dirs(self, scene: Path) -> list[Path]:
        assert self.lq_dir is not None
        if not _GLOB_CHARS.search(self.lq_dir):
            return [self._existing_dir(scene / self.lq_dir)]
        dirs = sorted(p for p in scene.glob(self.lq_dir) if p.is_dir())
        if not dirs:
            self._fail(f"no degraded-image folders matching {self.lq_dir!r}", scene)
        return dirs

    def _existing_dir(self, path: Path) -> Path:
        if not path.is_dir():
            self._fail("folder not found", path)
        return path

    def _fail(self, problem: str, path: Path) -> None:
        raise DatasetLayoutError(
            f"dataset {self.name!r}: {problem}: {path}\n"
            f"expected layout:\n{self.layout()}\n"
            f"download: {self.url or 'n/a'}\n"
            f"{self.notes.strip() + chr(10) if self.notes.strip() else ''}"
            f"(set RAR_DATA or override the dataset root to point at your copy)"
        )


def _join(folder: str, pattern: str) -> str:
    return pattern if folder in ("", ".") else f"{folder}/{pattern}"


def _image_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _index_by_stem(folder: Path, spec: DatasetSpec) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in _image_files(folder, "*"):
        if path.stem in index:
            spec._fail(f"two clean images share the stem {path.stem!r} ({index[path.stem].name}, {path.name})", folder)
        index[path.stem] = path
    return index


def check_all(specs: Sequence[DatasetSpec]) -> dict[str, int | str]:
    """Check several specs; returns ``{name: count}`` or ``{name: error message}`` per dataset."""
    report: dict[str, int | str] = {}
    for spec in specs:
        try:
            report[spec.name] = spec.check()
        except (DatasetLayoutError, ValueError) as error:
            report[spec.name] = str(error).splitlines()[0]
    return report
