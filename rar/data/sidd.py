"""Export SIDD's validation blocks (.mat) to the paired PNG folders ``configs/dataset/sidd_val.yaml`` reads.

SIDD publishes its sRGB validation set as two MATLAB files, ``ValidationNoisyBlocksSrgb.mat``
and ``ValidationGtBlocksSrgb.mat``, each holding a ``uint8`` array ``[40, 32, 256, 256, 3]``
(40 images x 32 blocks, RGB) under the variable of the same name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rar.utils.image_io import save_image

SIDD_VAL_FILES = {"input": "ValidationNoisyBlocksSrgb", "groundtruth": "ValidationGtBlocksSrgb"}
"""Output folder -> SIDD .mat file stem / variable name."""


def export_sidd_validation(mat_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> int:
    """Write ``out_dir/{input,groundtruth}/IIII_BB.png`` (image ``IIII``, block ``BB``) from the .mat files.

    Returns:
        Number of pairs written (1,280 for the full validation set).

    Raises:
        FileNotFoundError: a .mat file is missing. ValueError: unexpected array shapes.
        FileExistsError: an output file exists and ``overwrite`` is False.
    """
    from scipy.io import loadmat

    mat_dir, out_dir = Path(mat_dir), Path(out_dir)
    arrays = {}
    for folder, stem in SIDD_VAL_FILES.items():
        path = mat_dir / f"{stem}.mat"
        if not path.is_file():
            raise FileNotFoundError(
                f"SIDD validation file not found: {path} (download {stem}.mat from https://abdokamel.github.io/sidd/)"
            )
        array = loadmat(path)[stem]
        if array.ndim != 5 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(f"{path}: expected uint8 [images, blocks, H, W, 3], got {array.dtype} {array.shape}")
        arrays[folder] = array
    if arrays["input"].shape != arrays["groundtruth"].shape:
        raise ValueError(
            f"noisy {arrays['input'].shape} and clean {arrays['groundtruth'].shape} block arrays differ in shape"
        )
    images, blocks = arrays["input"].shape[:2]
    for folder, array in arrays.items():
        for i in range(images):
            for b in range(blocks):
                tensor = torch.from_numpy(array[i, b]).permute(2, 0, 1).float() / 255.0
                save_image(tensor, out_dir / folder / f"{i:04d}_{b:02d}.png", overwrite=overwrite)
    return images * blocks
