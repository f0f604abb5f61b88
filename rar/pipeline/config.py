"""Settings of the restore → assess → repeat loop (saved as ``rar_config.json`` in a model folder)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from rar.pipeline.prompts import PROMPT_POOLS
from rar.uir.sampler import METHODS

STOP_RULES = ("compare", "fixed")


@dataclass(frozen=True)
class LoopConfig:
    """How the loop runs.

    Attributes:
        max_rounds: most restore → assess rounds per image (>= 1).
        steps_per_round: integration steps of one round, ``t: 0 -> 1`` (>= 1).
        method: ``"euler"`` (the paper) or ``"heun"``.
        assess_every: re-assess the intermediate latent every this many steps and refresh the
            condition (the sampler hook); ``None`` assesses once per round.
        stop: ``"compare"`` — after each round the LQA compares the new latent with the round's
            input; if ``p_better < threshold`` the image stops and keeps the input (from the first
            round on, so the loop never returns something judged worse than its input);
            ``"fixed"`` — always ``max_rounds`` rounds, no comparison.
        threshold: acceptance threshold on ``p_better`` in ``[0, 1]``.
        first_threshold: the threshold of round 1 only (the comparison with the degraded input
            itself, the kind of pair the LQA learnt to compare; later rounds compare two
            restorations), or ``None`` for ``threshold`` (the paper: one threshold, 0.5).
            ``scripts/calibrate_stop.py`` chooses both.
        prompt_pool: ``"fixed"`` (the LQA's identification question) or ``"random"`` (one of 24
            phrasings per assessment, chosen from ``seed``; :mod:`rar.pipeline.prompts`).
        seed: seeds the prompt choice and, for a noise-start UIR, each image's start noise (:mod:`rar.uir.noise`).
        input_floor: an image whose every round is rejected comes back as the input itself, not as
            the decoded ``z_lq`` (the paper's loop); the two differ only for a lossy autoencoder,
            where the reconstruction would cost quality (measured in docs/experiments.md).
        input_detail: add to every decoded output the input's detail that the autoencoder drops,
            ``x - D(E(x))`` with its noise shrunk away (:mod:`rar.pipeline.input_detail`; one more
            decode per image); ``False``: the plain decode (the paper's loop). Measured on the tiny
            model only (docs/experiments.md).
    """

    max_rounds: int = 3
    steps_per_round: int = 4
    method: str = "euler"
    assess_every: int | None = None
    stop: str = "compare"
    threshold: float = 0.5
    first_threshold: float | None = None
    prompt_pool: str = "fixed"
    seed: int = 0
    input_floor: bool = True
    input_detail: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.max_rounds >= 1, f"max_rounds must be >= 1, got {self.max_rounds}"),
            (self.steps_per_round >= 1, f"steps_per_round must be >= 1, got {self.steps_per_round}"),
            (self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}"),
            (self.assess_every is None or self.assess_every >= 1,
             f"assess_every must be None or >= 1, got {self.assess_every}"),
            (self.stop in STOP_RULES, f"stop must be one of {STOP_RULES}, got {self.stop!r}"),
            (0.0 <= self.threshold <= 1.0, f"threshold must lie in [0, 1], got {self.threshold}"),
            (self.first_threshold is None or 0.0 <= self.first_threshold <= 1.0,
             f"first_threshold must be None or lie in [0, 1], got {self.first_threshold}"),
            (self.prompt_pool in PROMPT_POOLS, f"prompt_pool must be one of {PROMPT_POOLS}, got {self.prompt_pool!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def threshold_at(self, round_index: int) -> float:
        """The acceptance threshold of round ``round_index`` (1-based)."""
        return self.threshold if round_index > 1 or self.first_threshold is None else self.first_threshold

    def replace(self, **changes) -> LoopConfig:
        """A copy with ``changes`` (unknown names are an error listing the known ones)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown loop settings {unknown}; known: {[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LoopConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"loop settings not found: {path}")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of loop settings, got {type(values).__name__}")
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, value in values.items():
            expected = _JSON_KINDS.get(kinds.get(name))
            if expected is not None and (not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool)):
                raise ValueError(f"{path}: {name} must be {kinds[name]}, got {value!r}")
        try:
            return cls().replace(**values)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from error


_JSON_KINDS = {"bool": bool, "int": int, "int | None": (int, type(None)), "str": str, "float": (int, float),
               "float | None": (int, float, type(None))}
"""JSON value types accepted per annotated field type (annotations are strings: ``from __future__``)."""
