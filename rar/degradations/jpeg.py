"""Real JPEG round trip (libjpeg via ``torchvision.io``), one quality per image.

AgenticIR uses ``cv2.imencode('.jpg', img, [IMWRITE_JPEG_QUALITY, q])``; torchvision links the
same libjpeg(-turbo) with the same defaults (4:2:0 chroma subsampling, standard tables scaled by
quality, integer DCT), so the artefacts are the same kind and strength.
"""

from __future__ import annotations

import torch
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg


def jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Encode each image to JPEG at ``quality[b]`` (integer 1–100) and decode it back.

    Args:
        img: ``[B, 3, H, W]`` float in ``[0, 1]`` (quantised to 8 bits first, as a codec sees it).
        quality: ``[B]`` integers in ``[1, 100]``.

    Returns:
        ``[B, 3, H, W]`` of ``img``'s dtype/device, multiples of 1/255. Encoding runs on the CPU, one
        image at a time (libjpeg has no batched encoder with per-image quality).
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"jpeg expects [B, 3, H, W], got {tuple(img.shape)}")
    quality = torch.as_tensor(quality).flatten()
    if quality.shape[0] != img.shape[0]:
        raise ValueError(f"jpeg needs one quality per image ({img.shape[0]}), got {quality.shape[0]}")
    if quality.is_floating_point() and not torch.equal(quality, quality.round()):
        raise ValueError(f"jpeg quality must be integers, got {quality.tolist()}")
    if (quality < 1).any() or (quality > 100).any():
        raise ValueError(f"jpeg quality must be in [1, 100], got {quality.tolist()}")
    pixels = (img.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    decoded = [
        decode_jpeg(encode_jpeg(pixels[i], quality=int(q)), mode=ImageReadMode.RGB)
        for i, q in enumerate(quality.tolist())
    ]
    return (torch.stack(decoded).to(img.device, img.dtype)) / 255.0
