"""Depth maps for depth-aware degradations (haze), as MiO100 / AgenticIR ship them.

AgenticIR stores one monocular depth estimate per clean image at 1/4 of its size in
``depth/<stem>/predict_depth.mat`` (MATLAB v5 file, array under the key ``data_obj``) and
resizes it to the image size with OpenCV's cubic interpolation before synthesising haze;
:func:`load_depth` does the same. ``.npy`` arrays and grayscale image files are accepted too.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from rar.utils.image_io import IMAGE_EXTENSIONS, load_image

MAT_KEY = "data_obj"
"""Variable name of the depth array inside AgenticIR's ``predict_depth.mat`` files."""


def load_depth(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """Read a depth map and resize it to ``size = (H, W)`` (OpenCV ``INTER_CUBIC``).

    Args:
        path: ``.mat`` (key ``data_obj``, or its only array), ``.npy`` or a grayscale image.
        size: target ``(H, W)``, the size of the clean image.

    Returns:
        ``float32`` tensor ``[1, H, W]``; raw depth values (not normalised: the haze degradation
        divides by the maximum itself).

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable or not a 2-D finite array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth map not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        depth = _read_mat(path)
    elif suffix == ".npy":
        depth = np.load(path)
    elif suffix in IMAGE_EXTENSIONS:
        depth = load_image(path)[0].numpy()
    else:
        raise ValueError(f"unsupported depth-map file {path}: expected .mat, .npy or an image")
    depth = np.squeeze(np.asarray(depth, dtype=np.float32))
    if depth.ndim != 2 or not np.isfinite(depth).all():
        raise ValueError(f"depth map {path} must be a finite 2-D array, got shape {depth.shape}")
    height, width = int(size[0]), int(size[1])
    if depth.shape != (height, width):
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_CUBIC)
    return torch.from_numpy(np.ascontiguousarray(depth))[None]


def _read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        contents = loadmat(path)
    except (ValueError, OSError, NotImplementedError) as error:
        raise ValueError(f"cannot read depth map {path} as a MATLAB v5 .mat file ({error})") from error
    if MAT_KEY in contents:
        return contents[MAT_KEY]
    arrays = [value for key, value in contents.items() if not key.startswith("__")]
    if len(arrays) != 1:
        raise ValueError(f"depth map {path}: no {MAT_KEY!r} variable and {len(arrays)} other arrays; cannot choose")
    return arrays[0]
