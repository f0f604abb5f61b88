"""The committed sample photos (``data/samples/``): public-domain / CC0 images bundled with
scikit-image, resized so the longer side is 256 px.

``SAMPLE_IMAGES`` is the visible list of what is shipped, with source and licence (taken from
the docstrings of ``skimage.data``); :func:`write_samples` regenerates the folder and its
``ATTRIBUTION.md`` from the files scikit-image installs (no download).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rar.utils.image_io import save_image


@dataclass(frozen=True)
class SampleImage:
    """One sample photo: scikit-image file name, split, description, source and licence."""

    name: str
    skimage_file: str
    split: str  # "train" or "heldout"
    description: str
    source: str
    licence: str


SAMPLE_IMAGES: tuple[SampleImage, ...] = (
    SampleImage("astronaut", "astronaut.png", "train", "portrait of astronaut Eileen Collins",
                "NASA Great Images database (https://flic.kr/p/r9qvLn)", "public domain (no known copyright restrictions)"),
    SampleImage("hubble_deep_field", "hubble_deep_field.jpg", "train", "Hubble eXtreme Deep Field",
                "HubbleSite, NASA", "public domain (NASA media guidelines)"),
    SampleImage("immunohistochemistry", "ihc.png", "train", "IHC-stained colonic glands (microscopy)",
                "Center for Microscopy And Molecular Imaging (CMMI)", "no known copyright restrictions"),
    SampleImage("retina", "retina.jpg", "train", "fundus photograph of a human retina",
                "Wikimedia Commons, Mikael Haggstrom (Fundus_photograph_of_normal_left_eye.jpg)", "CC0 1.0"),
    SampleImage("camera", "camera.png", "train", "grayscale photo of a photographer",
                "Lav Varshney", "CC0"),
    SampleImage("brick", "brick.png", "train", "grayscale brick-wall texture",
                "CC0Textures (Bricks25)", "CC0"),
    SampleImage("grass", "grass.png", "train", "grayscale grass texture",
                "DeviantArt, linolafett (Grass-01)", "CC0"),
    SampleImage("gravel", "gravel.png", "train", "grayscale gravel texture",
                "CC0Textures (Gravel04)", "CC0"),
    SampleImage("coins", "coins.png", "train", "grayscale Greek coins from Pompeii",
                "Brooklyn Museum Collection", "no known copyright restrictions"),
    SampleImage("chelsea", "chelsea.png", "heldout", "Chelsea the cat (animal, fur texture)",
                "Stefan van der Walt", "CC0"),
    SampleImage("coffee", "coffee.png", "heldout", "coffee cup on a wooden table (indoor objects)",
                "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    SampleImage("rocket", "rocket.jpg", "heldout", "Falcon 9 launch of DSCOVR (outdoor scene, sky)",
                "SpaceX Photos on Flickr", "public domain (released by SpaceX)"),
)

LONG_SIDE = 256
"""Longer side of every sample image, in pixels."""


def sample_size(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """Target ``(width, height)``: longer side ``long_side``, shorter side scaled to keep the aspect
    ratio and rounded to a multiple of 4 (so x1/4 low-resolution degradations divide exactly;
    the aspect changes by < 1%)."""
    if width >= height:
        return long_side, max(4, 4 * round(height * long_side / width / 4))
    return max(4, 4 * round(width * long_side / height / 4)), long_side


def write_samples(out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write the sample photos as PNG under ``out_dir/{train,heldout}/`` plus ``ATTRIBUTION.md``.

    Reads the files scikit-image installs with its package (``skimage/data/``), converts them to
    RGB (grayscale replicated), resizes with Lanczos to :func:`sample_size`.

    Returns:
        The written image paths, in ``SAMPLE_IMAGES`` order.
    """
    import skimage.data  # dev dependency, imported only here

    data_dir = Path(skimage.data.__file__).parent
    out_dir = Path(out_dir)
    written = []
    for sample in SAMPLE_IMAGES:
        with Image.open(data_dir / sample.skimage_file) as image:
            rgb = image.convert("RGB")
            rgb = rgb.resize(sample_size(*rgb.size), Image.Resampling.LANCZOS)
        tensor = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).float() / 255.0
        written.append(save_image(tensor, out_dir / sample.split / f"{sample.name}.png", overwrite=overwrite))
    attribution = out_dir / "ATTRIBUTION.md"
    if attribution.exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file {attribution} (pass overwrite=True)")
    attribution.write_text(_attribution_markdown())
    return written


def _attribution_markdown() -> str:
    lines = [
        "# Sample images: sources and licences",
        "",
        "All images come from the data bundled with scikit-image (`skimage.data`, files installed with",
        "the package; licences as stated in the `skimage.data` docstrings). Each was converted to RGB",
        f"(grayscale replicated) and resized with Lanczos so that its longer side is {LONG_SIDE} px and its",
        "shorter side a multiple of 4. Regenerate with `python scripts/prepare_data.py task=samples`.",
        "",
        "| file | scikit-image file | content | source | licence |",
        "|---|---|---|---|---|",
    ]
    for s in SAMPLE_IMAGES:
        lines.append(f"| `{s.split}/{s.name}.png` | `{s.skimage_file}` | {s.description} | {s.source} | {s.licence} |")
    return "\n".join(lines) + "\n"
