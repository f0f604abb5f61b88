"""Image degradations: pure batched torch ops and one composition point.

- ``pipeline``: ``DEGRADATIONS`` (name → spec), ``AGENTICIR_GROUPS``, ``degrade``, ``describe``…
- ``specs``: per-degradation parameter ranges, sampling and validation.
- ops: ``ops`` (low resolution, dark, haze, motion/defocus blur), ``noise``, ``jpeg``, ``rain``,
  ``realesrgan`` (training corpus); helpers ``resize`` (MATLAB ``imresize``), ``kernels``,
  ``filtering``, ``color``.

Images are ``[B, 3, H, W]`` float RGB in ``[0, 1]``.
"""

from rar.degradations.labels import SEVERITIES, DegradationLabel
from rar.degradations.pipeline import (
    AGENTICIR_DEGRADATIONS,
    AGENTICIR_GROUPS,
    DEGRADATIONS,
    Degraded,
    apply_labels,
    combination_name,
    degrade,
    describe,
    display_name,
    get_spec,
    sample_labels,
)
from rar.degradations.resize import imresize

__all__ = [
    "AGENTICIR_DEGRADATIONS",
    "AGENTICIR_GROUPS",
    "DEGRADATIONS",
    "SEVERITIES",
    "DegradationLabel",
    "Degraded",
    "apply_labels",
    "combination_name",
    "degrade",
    "describe",
    "display_name",
    "get_spec",
    "imresize",
    "sample_labels",
]
