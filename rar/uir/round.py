"""One restoration round of a UIR, wherever its integration starts.

* Noise-free UIR (RAR, ``concat_lq=False``): integrate ``t: 0 -> 1`` from the round's input latent.
* Noise-start UIR (``concat_lq=True``: the noisy flow ablation, the SD1.5 diffusion restorer):
  start from the caller's seeded Gaussian noise (:func:`rar.uir.noise.start_noise`, one draw per
  image and round) and concatenate ``z_lq``
  on the channels at every step. **In round r > 1, ``z_lq`` is the round's input latent** — the
  current latent, i.e. the previous round's accepted output — exactly as in round 1, where it is
  the encoded degraded image: every round restores "what the image is now", as the noise-free loop
  does by starting from it. (Keeping the original degraded latent instead would make every round
  an independent re-sample of the same restoration, not a repeat.)

The RAR loop (:class:`rar.pipeline.RARPipeline`), the naive loop and the uir stage's validation call
:func:`restore_round`; the integration itself is the UIR's :meth:`~rar.uir.backbones.UIRModel.sample`
(Euler/Heun for flow models, the diffusers scheduler for diffusion ones).
"""

from __future__ import annotations

import torch

from rar.conditioning.condition import Condition
from rar.uir.backbones import UIRModel
from rar.uir.sampler import ConditionHook


def restore_round(
    uir: UIRModel,
    z: torch.Tensor,
    cond: Condition,
    steps: int,
    method: str = "euler",
    noise: torch.Tensor | None = None,
    hook: ConditionHook | None = None,
    hook_every: int | None = None,
) -> torch.Tensor:
    """Restore latents ``z [B, C, h, w]`` (the round's input) under ``cond``; returns ``[B, C, h, w]``.

    ``noise [B, C, h, w]`` is where a noise-start UIR starts (required for one, ignored otherwise);
    ``hook``/``hook_every`` re-assess intermediate latents (:func:`rar.uir.sampler.integrate`).
    """
    if uir.concat_lq:
        if noise is None or noise.shape != z.shape:
            raise ValueError(f"a noise-start UIR (concat_lq=True) needs start noise shaped like its input "
                             f"{tuple(z.shape)} (rar.uir.noise.start_noise), got "
                             f"{None if noise is None else tuple(noise.shape)}")
        start, z_lq = noise, z
    else:
        start, z_lq = z, None
    return uir.sample(start, cond, steps, method=method, z_lq=z_lq, hook=hook, hook_every=hook_every)
