"""UIR — the unified image restorer: a flow from the degraded latent (t = 0) to the clean one (t = 1).

- ``flow``: the flow convention (paths, timestep density, loss weights, diffusers sigma conversion).
- ``sampler``: Euler/Heun integration over any interval, with a condition-refresh hook.
- ``autoencoders``: frozen image <-> latent autoencoders (space-to-depth, SD3.5 / SD1.5 VAEs).
- ``backbones``: SD3.5 MMDiT / SD1.5 UNet wrapped as ``uir(x_t, t, cond, z_lq=None) -> v``.
"""
