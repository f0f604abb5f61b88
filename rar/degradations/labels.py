"""What was applied to an image: :class:`DegradationLabel`, severity words, parameter checks.

A label is the supervision the LQA learns from (``describe`` turns labels into its answer text)
and the record a benchmark manifest stores (``to_dict``/``from_dict`` round-trip through JSON).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

SEVERITIES: tuple[str, ...] = ("very low", "low", "medium", "high", "very high")


def severity_word(position: float) -> str:
    """Map where a sample lies in its range (0 = mildest end, 1 = harshest) onto :data:`SEVERITIES` (5 equal bins)."""
    if not math.isfinite(position):
        raise ValueError(f"severity position must be finite, got {position}")
    p = min(max(position, 0.0), 1.0)
    return SEVERITIES[min(int(p * len(SEVERITIES)), len(SEVERITIES) - 1)]


@dataclass(frozen=True)
class DegradationLabel:
    """One applied degradation.

    Attributes:
        name: key of ``DEGRADATIONS`` (e.g. ``"motion_blur"``).
        params: JSON-serialisable sampled parameters (e.g. ``{"radius": 15, "sigma": 5, "angle": 33.2}``).
        severity: one of :data:`SEVERITIES`, from where the sample lies in its allowed range.
    """

    name: str
    params: dict
    severity: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict:
        return {"name": self.name, "params": dict(self.params), "severity": self.severity}

    @classmethod
    def from_dict(cls, d: dict) -> DegradationLabel:
        missing = {"name", "params", "severity"} - set(d)
        if missing:
            raise ValueError(f"DegradationLabel.from_dict: missing keys {sorted(missing)} in {d!r}")
        return cls(name=str(d["name"]), params=dict(d["params"]), severity=str(d["severity"]))


def check_keys(name: str, params: dict, keys: Collection[str]) -> None:
    """Raise ``ValueError`` unless ``params`` has exactly ``keys``."""
    if not isinstance(params, dict):
        raise ValueError(f"{name}: params must be a dict, got {type(params).__name__}")
    if set(params) != set(keys):
        raise ValueError(f"{name}: params must have keys {sorted(keys)}, got {sorted(params)}")


def check_range(name: str, key: str, value: Any, lo: float, hi: float, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``lo <= value <= hi`` (and ``value`` is an integer when ``integer``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: {key} must be a number in [{lo}, {hi}], got {value!r}")
    if integer and value != int(value):
        raise ValueError(f"{name}: {key} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {key} = {value} is outside the allowed range [{lo}, {hi}]")


def check_choice(name: str, key: str, value: Any, options: Sequence) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"{name}: {key} = {value!r} is not one of the allowed values {list(options)}")


def position(value: float, lo: float, hi: float) -> float:
    """``(value − lo)/(hi − lo)`` clipped to ``[0, 1]``; 0.5 for a degenerate range."""
    return 0.5 if hi == lo else min(max((value - lo) / (hi - lo), 0.0), 1.0)
