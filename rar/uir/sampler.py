"""ODE integration of a velocity model over any time interval (Euler or Heun).

The RAR loop integrates the UIR from the degraded latent over ``t: 0 -> 1``; the joint stage
integrates partial intervals ``[0, t_k]``; both may refresh the condition on the way by
re-assessing the intermediate latent (the ``hook``). Gradients flow if the caller enables them;
wrap calls in ``torch.no_grad()`` for inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rar.conditioning.condition import Condition

VelocityModel = Callable[..., torch.Tensor]
"""``model(x_t [B,C,h,w], t [B] in [0,1], cond: Condition, z_lq=None) -> v [B,C,h,w]`` (our convention)."""

ConditionHook = Callable[[torch.Tensor, float, int], "Condition | None"]
"""``hook(x_t, t, step) -> Condition | None``; a returned condition replaces the current one."""

METHODS = ("euler", "heun")


@dataclass
class SampleResult:
    """Outcome of one integration.

    Attributes:
        latent: ``[B, C, h, w]`` latent at the end time ``t1``.
        times: ``[steps + 1]`` float grid ``t0 .. t1`` that was integrated over.
        condition: the condition in force at the end (the input one unless the hook replaced it).
        intermediates: if requested, ``steps + 1`` latents ``[B, C, h, w]``, one per grid time
            (the first is the start latent, the last equals ``latent``); otherwise ``None``.
    """

    latent: torch.Tensor
    times: torch.Tensor
    condition: Condition
    intermediates: list[torch.Tensor] | None = None


def integrate(
    model: VelocityModel,
    x0: torch.Tensor,
    cond: Condition,
    steps: int,
    t0: float = 0.0,
    t1: float = 1.0,
    method: str = "euler",
    z_lq: torch.Tensor | None = None,
    hook: ConditionHook | None = None,
    hook_every: int | None = None,
    keep_intermediates: bool = False,
) -> SampleResult:
    """Integrate ``dx/dt = model(x, t, cond)`` from ``x0`` at ``t0`` to ``t1`` on a uniform grid.

    Args:
        model: the velocity model (e.g. :class:`rar.uir.backbones.UIRModel`).
        x0: ``[B, C, h, w]`` start latent (the degraded latent for RAR's noise-free flow).
        cond: condition for the first step.
        steps: number of steps ``n >= 1``.
        t0, t1: interval; ``t1 < t0`` integrates backwards.
        method: ``"euler"`` (1 evaluation per step) or ``"heun"`` (2; exact for fields linear in t).
        z_lq: degraded latent passed to the model on every call (noisy-ablation models), or None.
        hook: called as ``hook(x_t, t, i)`` before step ``i`` for every ``i`` in ``k, 2k, ...`` below
            ``steps`` (``k = hook_every``); a returned :class:`Condition` is used from that step on.
        hook_every: ``k``; required when ``hook`` is given.
        keep_intermediates: also return the latent at every grid time.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if hook is not None and (hook_every is None or hook_every < 1):
        raise ValueError(f"a hook needs hook_every >= 1, got {hook_every}")
    if x0.ndim != 4:
        raise ValueError(f"expected a latent [B, C, h, w], got shape {tuple(x0.shape)}")
    times = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)
    batch = x0.shape[0]

    def velocity(x: torch.Tensor, t: float, c: Condition) -> torch.Tensor:
        tt = torch.full((batch,), t, device=x.device, dtype=x.dtype)
        return model(x, tt, c, z_lq=z_lq)

    x = x0
    kept = [x0] if keep_intermediates else None
    for i in range(steps):
        ta, tb = times[i].item(), times[i + 1].item()
        if hook is not None and i > 0 and i % hook_every == 0:
            refreshed = hook(x, ta, i)
            if refreshed is not None:
                cond = refreshed
        dt = tb - ta
        v = velocity(x, ta, cond)
        if method == "euler":
            x = x + dt * v
        else:
            v_next = velocity(x + dt * v, tb, cond)
            x = x + 0.5 * dt * (v + v_next)
        if kept is not None:
            kept.append(x)
    return SampleResult(latent=x, times=times.to(torch.float32), condition=cond, intermediates=kept)
