"""Image files <-> float tensors: the one place the project reads and writes pixels.

Every image in RAR is a float tensor ``[3, H, W]`` (or ``[B, 3, H, W]``) in ``[0, 1]``, RGB.
``load_image`` turns any common file into that form, documenting each conversion:

- 8-bit images are divided by 255, 16-bit images (PNG/TIFF) by 65535; float TIFFs must
  already lie in ``[0, 1]``.
- grayscale (``L``, 16-bit ``I;16``) is replicated to three identical channels;
- palette images are expanded through their palette;
- an alpha channel (RGBA, grayscale+alpha, palette with transparency) is **composited onto
  white**: ``rgb * a + (1 - a)``, which is what an image viewer shows; the alpha is then
  dropped;
- the EXIF orientation tag is ignored: pixels are returned as stored.

Decoding uses OpenCV (``IMREAD_UNCHANGED``, which keeps 16-bit depth); formats OpenCV does
not decode (e.g. GIF) fall back to Pillow. A missing, empty, corrupt or non-image file raises
:class:`ImageLoadError` naming the file.

``save_image`` writes an 8-bit RGB PNG (``round(clamp(x, 0, 1) * 255)``) and refuses to
overwrite an existing file unless ``overwrite=True``. PNG encoding is deterministic for a given
OpenCV build, so :func:`sha256_file` of a saved image is reproducible.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
"""File extensions (lower-case) that :func:`list_images` treats as images."""


class ImageLoadError(ValueError):
    """A file could not be decoded as an image (the message names the file)."""


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as an RGB float tensor.

    Args:
        path: image file (PNG, JPEG, BMP, TIFF, WebP, GIF, ...).

    Returns:
        ``float32`` tensor ``[3, H, W]`` in ``[0, 1]`` (conversions: see the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a file.
        ImageLoadError: the file is empty, corrupt, not an image, or has an unsupported
            pixel type (e.g. a float image outside ``[0, 1]``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise ImageLoadError(f"cannot read image {path}: the file is empty")
    array = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    array = _bgr_to_rgb(array) if array is not None else _decode_with_pillow(path)
    return _to_tensor(array, path)


def save_image(img: torch.Tensor, path: str | Path, overwrite: bool = False) -> Path:
    """Write an RGB image tensor as an 8-bit PNG.

    Args:
        img: ``[3, H, W]`` or ``[1, 3, H, W]`` float tensor, nominally in ``[0, 1]``; values are
            clamped to ``[0, 1]`` and rounded to 8 bits.
        path: destination; must end in ``.png``. Parent folders are created.
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: wrong shape, non-finite values, or a non-``.png`` path.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_image writes PNG only; got path {path} (suffix {path.suffix!r})")
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"save_image expects [3,H,W] or [1,3,H,W]; got shape {tuple(img.shape)} for {path}")
    if not torch.isfinite(img).all():
        raise ValueError(f"save_image got non-finite values (NaN/inf) for {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file {path} (pass overwrite=True)")
    pixels = (img.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    bgr = np.ascontiguousarray(pixels.permute(1, 2, 0).numpy()[:, :, ::-1])
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"OpenCV failed to encode a PNG for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded.tobytes())
    return path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), sorted by file name.

    A file counts as an image by its extension (case-insensitive, :data:`IMAGE_EXTENSIONS`).

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a folder.
        ValueError: the folder holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise ValueError(f"no image files in {folder} (looked for extensions {', '.join(IMAGE_EXTENSIONS)})")
    return images


def _bgr_to_rgb(array: np.ndarray) -> np.ndarray:
    """OpenCV channel order (BGR / BGRA) -> RGB / RGBA; grayscale is left as is."""
    if array.ndim == 3 and array.shape[2] == 3:
        return array[:, :, ::-1]
    if array.ndim == 3 and array.shape[2] == 4:
        return array[:, :, [2, 1, 0, 3]]
    return array


def _decode_with_pillow(path: Path) -> np.ndarray:
    """Decode a file OpenCV cannot read (GIF, ...) into an RGB or RGBA uint8 array."""
    try:
        with Image.open(path) as image:
            image.load()
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"cannot read image {path}: not a decodable image file ({error})") from error


def _to_tensor(array: np.ndarray, path: Path) -> torch.Tensor:
    """HxW / HxWxC (C in 1..4, RGB order) integer or float array -> [3,H,W] float in [0,1]."""
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif array.dtype in (np.float32, np.float64):
        values = array.astype(np.float32)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ImageLoadError(
                f"cannot read image {path}: float pixels must be finite and in [0, 1], "
                f"got range [{np.nanmin(values):.4g}, {np.nanmax(values):.4g}]"
            )
    else:
        raise ImageLoadError(f"cannot read image {path}: unsupported pixel type {array.dtype}")
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    if channels == 2:  # gray + alpha
        values = np.concatenate([values[:, :, :1].repeat(3, axis=2), values[:, :, 1:]], axis=2)
    elif channels == 1:
        values = values.repeat(3, axis=2)
    elif channels not in (3, 4):
        raise ImageLoadError(f"cannot read image {path}: expected 1-4 channels, got {channels}")
    if values.shape[2] == 4:
        alpha = values[:, :, 3:]
        values = values[:, :, :3] * alpha + (1.0 - alpha)
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1))).float()
