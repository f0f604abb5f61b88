"""The one composition point: the name → spec table, AgenticIR's combinations, and ``degrade``.

``degrade(img, names, generator)`` samples per-image parameters for each named degradation
(``sample_labels``), then applies them in the listed order (``apply_labels``), quantising to
8 bits after every step as AgenticIR does by storing uint8 images between steps. Hence::

    g = torch.Generator().manual_seed(s); labels = sample_labels(names, B, g); apply_labels(img, labels, g)

equals ``degrade(img, names, torch.Generator().manual_seed(s))`` bit for bit, and a manifest's
labels can be re-applied (with fresh noise for the random ops unless the generator state matches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rar.degradations.labels import DegradationLabel
from rar.degradations.specs import (
    Dark,
    DefocusBlur,
    DegradationSpec,
    GaussianPoissonNoise,
    Haze,
    Jpeg,
    LowResolution,
    MotionBlur,
    Noise,
    Rain,
    RealESRGAN,
)

DEGRADATIONS: dict[str, DegradationSpec] = {
    # AgenticIR's eight types
    "low_resolution": LowResolution(),
    "noise": Noise(),
    "jpeg": Jpeg(),
    "dark": Dark(),
    "haze": Haze(),
    "motion_blur": MotionBlur(),
    "defocus_blur": DefocusBlur(),
    "rain": Rain(),
    # training corpus
    "gaussian_poisson_noise": GaussianPoissonNoise(),
    "realesrgan": RealESRGAN(),
}

AGENTICIR_DEGRADATIONS: tuple[str, ...] = (
    "low_resolution",
    "noise",
    "jpeg",
    "dark",
    "haze",
    "motion_blur",
    "defocus_blur",
    "rain",
)

# AgenticIR's 16 combinations (dataset/degradations.txt), applied in the listed order.
AGENTICIR_GROUPS: dict[str, list[tuple[str, ...]]] = {
    "A": [
        ("rain", "haze"),
        ("motion_blur", "low_resolution"),
        ("dark", "noise"),
        ("defocus_blur", "jpeg"),
        ("noise", "jpeg"),
        ("rain", "low_resolution"),
        ("motion_blur", "dark"),
        ("defocus_blur", "haze"),
    ],
    "B": [
        ("motion_blur", "jpeg"),
        ("haze", "noise"),
        ("defocus_blur", "low_resolution"),
        ("rain", "dark"),
    ],
    "C": [
        ("haze", "motion_blur", "low_resolution"),
        ("rain", "noise", "low_resolution"),
        ("dark", "defocus_blur", "jpeg"),
        ("motion_blur", "defocus_blur", "noise"),
    ],
}


@dataclass
class Degraded:
    """A degraded batch and what was done to it.

    Attributes:
        lq: ``[B, 3, h, w]`` float in ``[0, 1]`` (multiples of 1/255 when quantised); ``h, w = H/4, W/4``
            after ``low_resolution`` / ``realesrgan``, else ``H, W``.
        labels: per image, one :class:`DegradationLabel` per applied degradation, in application order.
    """

    lq: torch.Tensor
    labels: list[list[DegradationLabel]]


def get_spec(name: str) -> DegradationSpec:
    """The spec of ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; expected one of {sorted(DEGRADATIONS)}")
    return DEGRADATIONS[name]


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ValueError(f"names must be a sequence of degradation names, got the string {names!r} (use [{names!r}])")
    names = tuple(names)
    for n in names:
        get_spec(n)
    return names


def display_name(name: str) -> str:
    """AgenticIR's wording: ``"motion_blur"`` → ``"motion blur"``, ``"jpeg"`` → ``"jpeg compression artifact"``."""
    return get_spec(name).display


def combination_name(names: Sequence[str]) -> str:
    """AgenticIR's LQ folder name: display names joined by ``+``, e.g. ``"haze+motion blur+low resolution"``
    (their layout is ``LQ/d{len(names)}/<combination_name>/<image>.png``)."""
    return "+".join(display_name(n) for n in _check_names(names))


def describe(labels: Sequence[DegradationLabel], severity: bool = False) -> str:
    """The answer text for one image: ``"noise, haze"``, or with ``severity`` ``"high noise, medium haze"``."""
    parts = [display_name(lab.name) for lab in labels]
    if severity:
        parts = [f"{lab.severity} {p}" for lab, p in zip(labels, parts)]
    return ", ".join(parts)


def _check_img(img: torch.Tensor) -> None:
    if not torch.is_tensor(img) or img.ndim != 4 or img.shape[1] != 3 or not img.is_floating_point():
        shape = tuple(img.shape) if torch.is_tensor(img) else type(img).__name__
        raise ValueError(f"degrade expects a float image batch [B, 3, H, W] in [0, 1], got {shape}")
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"degrade expects values in [0, 1], got min {lo:.4f}, max {hi:.4f}")


def sample_labels(names: Sequence[str], batch: int, generator: torch.Generator) -> list[list[DegradationLabel]]:
    """Per image, a label with freshly sampled parameters for each of ``names`` (in order)."""
    names = _check_names(names)
    per_name = [[get_spec(n).label(n, p) for p in get_spec(n).sample(batch, generator)] for n in names]
    return [[labels[i] for labels in per_name] for i in range(batch)]


def apply_labels(
    img: torch.Tensor,
    labels: Sequence[Sequence[DegradationLabel]],
    generator: torch.Generator,
    depth: torch.Tensor | None = None,
    quantize: bool = True,
) -> Degraded:
    """Apply given labels (one list per image, all images naming the same degradations in the same order).

    Parameters are validated against each spec's ranges (``ValueError`` on anything out of range).
    ``depth [B, 1, h, w]`` is used by ``haze``. ``quantize`` rounds to 8 bits after every step.
    """
    _check_img(img)
    if len(labels) != img.shape[0]:
        raise ValueError(f"need one label list per image ({img.shape[0]}), got {len(labels)}")
    sequences = {tuple(lab.name for lab in row) for row in labels}
    if len(sequences) != 1:
        raise ValueError(f"all images of a batch must share the degradation sequence, got {sorted(sequences)}")
    names = _check_names(sequences.pop())
    for row in labels:
        for lab in row:
            if not isinstance(lab.params, dict):
                raise ValueError(f"{lab.name}: params must be a dict, got {type(lab.params).__name__}")
            get_spec(lab.name).check(lab.params)
    out = img.contiguous()  # ops may reshape with view (e.g. a permuted numpy HWC image)
    for step, name in enumerate(names):
        out = get_spec(name).apply(out, [row[step].params for row in labels], generator, depth)
        if quantize:
            out = (out * 255.0).round().clamp(0, 255) / 255.0
    return Degraded(lq=out, labels=[list(row) for row in labels])


def degrade(
    img: torch.Tensor,
    names: Sequence[str],
    generator: torch.Generator,
    depth: torch.Tensor | None = None,
    quantize: bool = True,
) -> Degraded:
    """Degrade ``img [B, 3, H, W]`` in ``[0, 1]`` by ``names`` in order, each image with its own parameters.

    Deterministic given the generator's state (same seed ⇒ bit-identical output on one machine).
    """
    _check_img(img)
    return apply_labels(img, sample_labels(names, img.shape[0], generator), generator, depth, quantize)
