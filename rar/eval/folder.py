"""The ``folder`` method: another method's saved outputs, scored like a live method.

A folder of restored images (AgenticIR's released results, a previous run's ``images/``, any
baseline run elsewhere) is matched to the benchmark items:

- ``match="path"`` (default): the output for item key ``d2/rain+haze/001.png`` is
  ``<root>/d2/rain+haze/001.<ext>`` (any image extension) — AgenticIR's results layout and the
  harness's own ``images/`` layout;
- ``match="stem"``: the output is the one file anywhere under ``root`` whose stem equals the
  key's file stem (for flat folders of single-dataset results; stems must be unique).

Missing outputs are reported all at once, before any image is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rar.core.outputs import MethodOutput
from rar.utils.image_io import IMAGE_EXTENSIONS, load_image

MATCH_MODES = ("path", "stem")


class FolderMethod:
    """Saved outputs under ``root``, looked up by benchmark item key.

    Args:
        root: folder holding the outputs.
        match: ``"path"`` (relative path, any extension) or ``"stem"`` (file stem anywhere under root).
    """

    def __init__(self, root: str | Path, match: str = "path") -> None:
        self.root = Path(root)
        if match not in MATCH_MODES:
            raise ValueError(f"FolderMethod match must be one of {MATCH_MODES}, got {match!r}")
        if not self.root.is_dir():
            raise FileNotFoundError(f"FolderMethod: output folder not found: {self.root}")
        self.match = match
        self._by_stem: dict[str, Path] | None = None

    def find(self, key: str) -> Path | None:
        """The output file for ``key``, or ``None`` when there is none."""
        if self.match == "stem":
            return self._stem_index().get(Path(key).stem)
        base = self.root / Path(key).with_suffix("")
        for ext in IMAGE_EXTENSIONS:
            for candidate in (base.with_name(base.name + ext), base.with_name(base.name + ext.upper())):
                if candidate.is_file():
                    return candidate
        return None

    def check(self, keys: Sequence[str]) -> None:
        missing = [key for key in keys if self.find(key) is None]
        if missing:
            shown = "\n  ".join(missing[:50]) + (f"\n  ... and {len(missing) - 50} more" if len(missing) > 50 else "")
            rule = "<root>/<key minus extension>.<image ext>" if self.match == "path" else "a file with the key's stem"
            raise FileNotFoundError(
                f"FolderMethod: {len(missing)} of {len(keys)} outputs missing under {self.root} "
                f"(match={self.match!r}: looked for {rule}):\n  {shown}"
            )

    def load(self, key: str) -> MethodOutput:
        path = self.find(key)
        if path is None:
            raise FileNotFoundError(f"FolderMethod: no output for {key!r} under {self.root} (match={self.match!r})")
        return MethodOutput(images=load_image(path)[None], rounds=[0], labels=[[]])

    def _stem_index(self) -> dict[str, Path]:
        if self._by_stem is None:
            index: dict[str, Path] = {}
            for path in sorted(self.root.rglob("*")):
                if not (path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS):
                    continue
                if path.stem in index:
                    raise ValueError(
                        f"FolderMethod(match='stem'): two outputs share the stem {path.stem!r}: "
                        f"{index[path.stem]} and {path}; use match='path'"
                    )
                index[path.stem] = path
            self._by_stem = index
        return self._by_stem
