"""One spec per degradation: its parameter ranges, how to sample them, how to check them, which op applies them.

Ranges are AgenticIR's (``add_single_degradation.py``; integer ranges are numpy ``randint``
half-open, so ``randint(10, 30)`` gives 10–29), except the two training-corpus entries at the end.
Params are plain JSON dicts per image; ``apply`` turns a batch of them into ``[B]`` tensors and
calls the pure op. The visible name → spec table is ``DEGRADATIONS`` in :mod:`rar.degradations.pipeline`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch

from rar.degradations import noise as noise_ops
from rar.degradations import ops
from rar.degradations.jpeg import jpeg
from rar.degradations.labels import DegradationLabel, check_choice, check_keys, check_range, position, severity_word
from rar.degradations.rain import rain
from rar.degradations.realesrgan import (
    DEFAULT_SETTINGS,
    RealESRGANSettings,
    check_realesrgan,
    realesrgan,
    realesrgan_position,
    sample_realesrgan,
)
from rar.degradations.sampling import Draw


def _column(params: Sequence[dict], key: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor([p[key] for p in params], dtype=dtype, device=device)


class DegradationSpec(ABC):
    """How one named degradation is sampled, validated, graded and applied."""

    display: ClassVar[str]  # AgenticIR's wording, used in folder names and answer texts

    @abstractmethod
    def sample(self, batch: int, generator: torch.Generator) -> list[dict]:
        """``batch`` independent JSON parameter dicts."""

    @abstractmethod
    def check(self, params: dict) -> None:
        """Raise ``ValueError`` naming the offending value and the allowed range."""

    @abstractmethod
    def position(self, params: dict) -> float:
        """Where ``params`` lie in the allowed range: 0 mildest … 1 harshest."""

    @abstractmethod
    def apply(
        self, img: torch.Tensor, params: Sequence[dict], generator: torch.Generator, depth: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The degraded batch (clipped to ``[0, 1]``) for one params dict per image."""

    def label(self, name: str, params: dict) -> DegradationLabel:
        self.check(params)
        return DegradationLabel(name=name, params=params, severity=severity_word(self.position(params)))


class LowResolution(DegradationSpec):
    display = "low resolution"
    FACTORS = (4,)

    def sample(self, batch, generator):
        return [{"factor": 4} for _ in range(batch)]

    def check(self, params):
        check_keys("low_resolution", params, ("factor",))
        check_choice("low_resolution", "factor", params["factor"], self.FACTORS)

    def position(self, params):
        return 0.5  # a single fixed setting

    def apply(self, img, params, generator, depth=None):
        factors = {p["factor"] for p in params}
        if len(factors) != 1:
            raise ValueError(f"low_resolution needs one factor per batch, got {sorted(factors)}")
        return ops.low_resolution(img, factors.pop())


class Noise(DegradationSpec):
    """Gaussian σ ~ U(20, 50) (0–255 scale, colour) or Poisson scale ~ U(1, 3), each with probability ½."""

    display = "noise"
    SIGMA, SCALE = (20.0, 50.0), (1.0, 3.0)

    def sample(self, batch, generator):
        draw = Draw(generator)
        kinds = draw.choice(batch, ("gaussian", "poisson"))
        sigma, scale = draw.uniform(batch, *self.SIGMA), draw.uniform(batch, *self.SCALE)
        return [
            {"kind": k, "sigma": s} if k == "gaussian" else {"kind": k, "scale": c}
            for k, s, c in zip(kinds, sigma, scale)
        ]

    def check(self, params):
        check_choice("noise", "kind", params.get("kind"), ("gaussian", "poisson"))
        key, rng = ("sigma", self.SIGMA) if params["kind"] == "gaussian" else ("scale", self.SCALE)
        check_keys("noise", params, ("kind", key))
        check_range("noise", key, params[key], *rng)

    def position(self, params):
        return (
            position(params["sigma"], *self.SIGMA)
            if params["kind"] == "gaussian"
            else position(params["scale"], *self.SCALE)
        )

    def apply(self, img, params, generator, depth=None):
        poisson = torch.tensor([p["kind"] == "poisson" for p in params], device=img.device)
        level = torch.tensor(
            [p["scale"] if p["kind"] == "poisson" else p["sigma"] for p in params], dtype=img.dtype, device=img.device
        )
        return noise_ops.noise(img, poisson, level, generator)


class Jpeg(DegradationSpec):
    """Quality ``randint(10, 30)``: 10–29."""

    display = "jpeg compression artifact"
    QUALITY = (10, 29)

    def sample(self, batch, generator):
        return [{"quality": q} for q in Draw(generator).integers(batch, self.QUALITY[0], self.QUALITY[1] + 1)]

    def check(self, params):
        check_keys("jpeg", params, ("quality",))
        check_range("jpeg", "quality", params["quality"], *self.QUALITY, integer=True)

    def position(self, params):
        return position(self.QUALITY[1] - params["quality"], 0, self.QUALITY[1] - self.QUALITY[0])

    def apply(self, img, params, generator, depth=None):
        return jpeg(img, torch.tensor([int(p["quality"]) for p in params]))


class Dark(DegradationSpec):
    """On HSV V: shift ``randint(30, 50)``, gamma ``U(0.5, 0.7)`` or linear max ``randint(100, 150)``, uniformly."""

    display = "dark"
    METHODS: ClassVar[dict[str, tuple[str, tuple[float, float], bool]]] = {
        "constant shift": ("shift", (30, 49), True),
        "gamma correction": ("gamma", (0.5, 0.7), False),
        "linear mapping": ("max_value", (100, 149), True),
    }  # method -> (key, range, integer)

    def sample(self, batch, generator):
        draw = Draw(generator)
        methods = draw.choice(batch, tuple(self.METHODS))
        shift, gamma, peak = draw.integers(batch, 30, 50), draw.uniform(batch, 0.5, 0.7), draw.integers(batch, 100, 150)
        values = {"constant shift": shift, "gamma correction": gamma, "linear mapping": peak}
        return [{"method": m, self.METHODS[m][0]: values[m][i]} for i, m in enumerate(methods)]

    def check(self, params):
        check_choice("dark", "method", params.get("method"), tuple(self.METHODS))
        key, rng, integer = self.METHODS[params["method"]]
        check_keys("dark", params, ("method", key))
        check_range("dark", key, params[key], *rng, integer=integer)

    def position(self, params):
        key, (lo, hi), _ = self.METHODS[params["method"]]
        p = position(params[key], lo, hi)
        return p if key == "shift" else 1.0 - p  # smaller gamma / max_value is darker

    def apply(self, img, params, generator, depth=None):
        codes = list(self.METHODS)
        method = torch.tensor([codes.index(p["method"]) for p in params], device=img.device)
        amount = torch.tensor(
            [float(p[self.METHODS[p["method"]][0]]) for p in params], dtype=img.dtype, device=img.device
        )
        return ops.dark(img, method, amount)


class Haze(DegradationSpec):
    """``A ~ U(0.7, 1.0)``, ``β ~ U(0.6, 1.8)`` (RESIDE); depth from the caller or :func:`ops.synthetic_depth`."""

    display = "haze"
    AIRLIGHT, BETA = (0.7, 1.0), (0.6, 1.8)

    def sample(self, batch, generator):
        draw = Draw(generator)
        return [
            {"airlight": a, "beta": b}
            for a, b in zip(draw.uniform(batch, *self.AIRLIGHT), draw.uniform(batch, *self.BETA))
        ]

    def check(self, params):
        check_keys("haze", params, ("airlight", "beta"))
        check_range("haze", "airlight", params["airlight"], *self.AIRLIGHT)
        check_range("haze", "beta", params["beta"], *self.BETA)

    def position(self, params):
        return position(params["beta"], *self.BETA)

    def apply(self, img, params, generator, depth=None):
        return ops.haze(
            img,
            _column(params, "airlight", img.dtype, img.device),
            _column(params, "beta", img.dtype, img.device),
            depth,
        )


class MotionBlur(DegradationSpec):
    """(radius, σ) uniformly from ``LEVELS``, angle ``U(−90, 90)`` degrees."""

    display = "motion blur"
    LEVELS = ((10, 3), (15, 5), (15, 8))
    ANGLE = (-90.0, 90.0)

    def sample(self, batch, generator):
        draw = Draw(generator)
        levels, angles = draw.choice(batch, self.LEVELS), draw.uniform(batch, *self.ANGLE)
        return [{"radius": r, "sigma": s, "angle": a} for (r, s), a in zip(levels, angles)]

    def check(self, params):
        check_keys("motion_blur", params, ("radius", "sigma", "angle"))
        check_choice("motion_blur", "(radius, sigma)", (params["radius"], params["sigma"]), self.LEVELS)
        check_range("motion_blur", "angle", params["angle"], *self.ANGLE)

    def position(self, params):
        return self.LEVELS.index((params["radius"], params["sigma"])) / (len(self.LEVELS) - 1)

    def apply(self, img, params, generator, depth=None):
        cpu = torch.device("cpu")
        return ops.motion_blur(
            img,
            _column(params, "radius", torch.long, cpu),
            _column(params, "sigma", torch.float64, cpu),
            _column(params, "angle", torch.float64, cpu),
        )


class DefocusBlur(DegradationSpec):
    """(radius, alias σ) uniformly from ``LEVELS``."""

    display = "defocus blur"
    LEVELS = ((3, 0.1), (4, 0.5), (6, 0.5))

    def sample(self, batch, generator):
        return [{"radius": r, "alias_sigma": s} for r, s in Draw(generator).choice(batch, self.LEVELS)]

    def check(self, params):
        check_keys("defocus_blur", params, ("radius", "alias_sigma"))
        check_choice("defocus_blur", "(radius, alias_sigma)", (params["radius"], params["alias_sigma"]), self.LEVELS)

    def position(self, params):
        return self.LEVELS.index((params["radius"], params["alias_sigma"])) / (len(self.LEVELS) - 1)

    def apply(self, img, params, generator, depth=None):
        cpu = torch.device("cpu")
        return ops.defocus_blur(
            img, _column(params, "radius", torch.float64, cpu), _column(params, "alias_sigma", torch.float64, cpu)
        )


class Rain(DegradationSpec):
    """Streak length ``randint(20, 40)``, angle ``randint(−30, 30)``, density ``randint(50, 100)``."""

    display = "rain"
    LENGTH, ANGLE, DENSITY = (20, 39), (-30, 29), (50, 99)

    def sample(self, batch, generator):
        draw = Draw(generator)
        length, angle = draw.integers(batch, 20, 40), draw.integers(batch, -30, 30)
        density = draw.integers(batch, 50, 100)
        return [{"density": d, "length": ln, "angle": a} for d, ln, a in zip(density, length, angle)]

    def check(self, params):
        check_keys("rain", params, ("density", "length", "angle"))
        for key, rng in (("density", self.DENSITY), ("length", self.LENGTH), ("angle", self.ANGLE)):
            check_range("rain", key, params[key], *rng, integer=True)

    def position(self, params):
        return position(params["density"], *self.DENSITY)

    def apply(self, img, params, generator, depth=None):
        cpu = torch.device("cpu")
        return rain(
            img,
            _column(params, "density", img.dtype, img.device),
            _column(params, "length", torch.long, cpu),
            _column(params, "angle", torch.float64, cpu),
            generator,
        )


class GaussianPoissonNoise(DegradationSpec):
    """Training corpus: Poisson shot noise scale ``U(0.05, 3)`` then Gaussian read noise σ ``U(1, 50)`` (0–255)."""

    display = "noise"
    SIGMA, SCALE = (1.0, 50.0), (0.05, 3.0)

    def sample(self, batch, generator):
        draw = Draw(generator)
        return [
            {"sigma": s, "poisson_scale": c}
            for s, c in zip(draw.uniform(batch, *self.SIGMA), draw.uniform(batch, *self.SCALE))
        ]

    def check(self, params):
        check_keys("gaussian_poisson_noise", params, ("sigma", "poisson_scale"))
        check_range("gaussian_poisson_noise", "sigma", params["sigma"], *self.SIGMA)
        check_range("gaussian_poisson_noise", "poisson_scale", params["poisson_scale"], *self.SCALE)

    def position(self, params):
        return 0.5 * (position(params["sigma"], *self.SIGMA) + position(params["poisson_scale"], *self.SCALE))

    def apply(self, img, params, generator, depth=None):
        return noise_ops.gaussian_poisson_noise(
            img,
            _column(params, "sigma", img.dtype, img.device),
            _column(params, "poisson_scale", img.dtype, img.device),
            generator,
        )


class RealESRGAN(DegradationSpec):
    """Training corpus: Real-ESRGAN's second-order degradation to ``H/4 × W/4`` (x4plus settings)."""

    display = "real-world degradation"

    def __init__(self, settings: RealESRGANSettings = DEFAULT_SETTINGS):
        self.settings = settings

    def sample(self, batch, generator):
        return sample_realesrgan(batch, generator, self.settings)

    def check(self, params):
        check_realesrgan(params, self.settings)

    def position(self, params):
        return realesrgan_position(params, self.settings)

    def apply(self, img, params, generator, depth=None):
        return realesrgan(img, params, generator)
