"""DepictQA-format records: read, validate, write.

A record (DepictQA's ``metas`` JSON lists) is::

    {"id": "...", "image_ref": null | path, "image_A": path, "image_B": null | path,
     "task_type": "quality_single_A_noref" | "quality_compare_noref" | ...,
     "conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}

Test-split records carry ``"query"`` / ``"answer"`` instead of ``conversations`` (DepictQA's
``gen_json_*`` scripts); they are read as a one-question conversation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rar.lqa.prompts import TASK_TYPES, PromptLayout, Turn, build_layout, image_layout


@dataclass(frozen=True)
class DepictQARecord:
    """One DepictQA record; image fields are paths relative to the dataset root (or ``None``)."""

    id: str
    task_type: str
    image_ref: str | None
    image_A: str | None
    image_B: str | None
    conversations: tuple[Turn, ...]

    def layout(self) -> PromptLayout:
        return build_layout(self.task_type, self.conversations)

    def image_paths(self) -> list[str]:
        """The image fields that fill the prompt's image slots, in slot order."""
        keys, _, _ = image_layout(self.task_type)
        return [getattr(self, key) for key in keys]

    def to_json(self) -> dict:
        return {
            "id": self.id, "image_ref": self.image_ref, "image_A": self.image_A, "image_B": self.image_B,
            "task_type": self.task_type,
            "conversations": [{"from": t.role, "value": t.text} for t in self.conversations],
        }


def parse_record(obj: dict, where: str = "record") -> DepictQARecord:
    """Validate one JSON object; errors name ``where`` and what was expected."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    task_type = obj.get("task_type")
    if task_type not in TASK_TYPES:
        raise ValueError(f"{where}: task_type must be one of {TASK_TYPES}, got {task_type!r}")
    if "conversations" in obj:
        turns = []
        for i, turn in enumerate(obj["conversations"]):
            valid = isinstance(turn, dict) and turn.get("from") in ("human", "gpt")
            if not valid or not isinstance(turn.get("value"), str):
                raise ValueError(
                    f"{where}: conversations[{i}] must be {{'from': 'human'|'gpt', 'value': str}}, got {turn!r}"
                )
            turns.append(Turn(turn["from"], turn["value"]))
    elif isinstance(obj.get("query"), str):
        turns = [Turn("human", obj["query"])]
        if isinstance(obj.get("answer"), str):
            turns.append(Turn("gpt", obj["answer"]))
    else:
        raise ValueError(f"{where}: needs 'conversations' (or 'query'/'answer'), has keys {sorted(obj)}")
    record = DepictQARecord(
        id=str(obj.get("id", where)), task_type=task_type, image_ref=obj.get("image_ref"),
        image_A=obj.get("image_A"), image_B=obj.get("image_B"), conversations=tuple(turns),
    )
    missing = [k for k, path in zip(image_layout(task_type)[0], record.image_paths(), strict=True) if not path]
    if missing:
        raise ValueError(f"{where}: task_type {task_type} needs images {missing}, which are empty")
    record.layout()  # validates the turn order
    return record


def read_records(path: str | Path) -> list[DepictQARecord]:
    """Read a DepictQA JSON list (or JSON Lines) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DepictQA record file not found: {path}")
    text = path.read_text()
    if path.suffix == ".jsonl":
        objs = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        objs = json.loads(text)
        if not isinstance(objs, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(objs).__name__}")
    return [parse_record(obj, f"{path}[{i}]") for i, obj in enumerate(objs)]


def write_records(records: Iterable[DepictQARecord], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_json() for r in records], indent=2))
    return path


def read_weighted(
    root: str | Path, meta_paths: Sequence[str], weights: Sequence[int] | None = None
) -> list[DepictQARecord]:
    """DepictQA's ``meta_paths_weights``: each file's records repeated ``weight`` times."""
    weights = [1] * len(meta_paths) if weights is None else list(weights)
    if len(weights) != len(meta_paths):
        raise ValueError(f"got {len(weights)} weights for {len(meta_paths)} meta files")
    out: list[DepictQARecord] = []
    for meta, weight in zip(meta_paths, weights, strict=True):
        out += int(weight) * read_records(Path(root) / meta)
    return out
