"""UIR backbones: SD3.5's MMDiT (and SD1.5's UNet for the ablation) as velocity models.

:class:`UIRModel` is what the rest of RAR calls: ``uir(x_t, t, cond, z_lq=None) -> v`` with ``t`` in
``[0, 1]`` and ``v`` in our convention (``t = 0`` degraded, ``t = 1`` clean). It converts to and
from diffusers' sigma convention through :mod:`rar.uir.flow` — the only place that happens.

For the noisy ablation (``concat_lq=True``) the backbone's input layer is widened to take
``[x_t, z_lq]`` on channels; the extra input weights start at zero (InstructPix2Pix), so a
pretrained backbone initially ignores ``z_lq``.
"""

from __future__ import annotations

import torch
from diffusers import SD3Transformer2DModel, UNet2DConditionModel

from rar.conditioning.condition import Condition
from rar.uir import flow
from rar.uir.sampler import ConditionHook, integrate

SD3_PRESETS: dict[str, dict] = {
    # stabilityai/stable-diffusion-3.5-medium, transformer/config.json (MMDiT-X)
    "sd35_medium": dict(
        sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
        attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
        caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=384,
        dual_attention_layers=tuple(range(13)), qk_norm="rms_norm",
    ),
    # stabilityai/stable-diffusion-3.5-large, transformer/config.json
    "sd35_large": dict(
        sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=38,
        attention_head_dim=64, num_attention_heads=38, joint_attention_dim=4096,
        caption_projection_dim=2432, pooled_projection_dim=2048, pos_embed_max_size=192,
        dual_attention_layers=(), qk_norm="rms_norm",
    ),
    # the tiny CPU experiment: the tiny AutoencoderKL's 16-channel stride-4 latents (patch 1: a token
    # per 4 x 4 px, which the learned decoder blends), tiny text stand-ins (64 / 48)
    "tiny": dict(
        sample_size=16, patch_size=1, in_channels=16, out_channels=16, num_layers=4,
        attention_head_dim=32, num_attention_heads=4, joint_attention_dim=64,
        caption_projection_dim=128, pooled_projection_dim=48, pos_embed_max_size=64,
    ),
}

SD15_PRESETS: dict[str, dict] = {
    # stable-diffusion-v1-5, unet/config.json (the remaining fields are diffusers' defaults)
    "sd15": dict(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
    ),
    # the tiny CPU stand-in: two levels (latent sides multiples of 2), the tiny experiment's 16-channel
    # latents, cross-attention on the tiny CLIP-L stand-in's 32-wide states
    "tiny": dict(
        sample_size=16, in_channels=16, out_channels=16, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    ),
}


class UIRModel(torch.nn.Module):
    """Velocity model ``(x_t, t, cond, z_lq) -> v`` around a diffusers backbone.

    Attributes:
        backbone: the wrapped diffusers model (its parameters are ``uir.backbone.*`` in a stage).
        latent_channels: channels of ``x_t`` and ``v``.
        concat_lq: whether ``z_lq`` is concatenated to ``x_t`` (noisy ablation).
        joint_attention_dim, pooled_projection_dim: the :class:`Condition` widths it accepts.
    """

    joint_attention_dim: int
    pooled_projection_dim: int

    def __init__(self, backbone: torch.nn.Module, latent_channels: int, concat_lq: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.latent_channels = latent_channels
        self.concat_lq = concat_lq

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, z_lq: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Velocity ``[B, C, h, w]`` (our convention) at ``x_t [B, C, h, w]``, ``t [B]`` in ``[0, 1]``.

        ``z_lq [B, C, h, w]`` is required iff ``concat_lq``.
        """
        if x_t.ndim != 4 or x_t.shape[1] != self.latent_channels:
            raise ValueError(f"UIR expects x_t [B, {self.latent_channels}, h, w], got {tuple(x_t.shape)}")
        if t.shape != (x_t.shape[0],):
            raise ValueError(f"UIR expects t of shape [{x_t.shape[0]}], got {tuple(t.shape)}")
        self._check_condition(cond, x_t.shape[0])
        if self.concat_lq != (z_lq is not None):
            raise ValueError(
                f"this UIR was built with concat_lq={self.concat_lq}: z_lq must be "
                f"{'given' if self.concat_lq else 'None'}, got {'None' if z_lq is None else tuple(z_lq.shape)}"
            )
        x = x_t if z_lq is None else torch.cat([x_t, z_lq.to(x_t.dtype)], dim=1)
        dtype = self.backbone.dtype  # the timestep stays float32 (bf16 cannot resolve 999 vs 1000)
        v_sd3 = self._backbone_velocity(x.to(dtype), flow.to_sd3_timestep(t.float()), cond.to(dtype))
        return flow.velocity_from_sd3(v_sd3).to(x_t.dtype)

    def sample(
        self,
        start: torch.Tensor,
        cond: Condition,
        steps: int,
        method: str = "euler",
        z_lq: torch.Tensor | None = None,
        hook: ConditionHook | None = None,
        hook_every: int | None = None,
    ) -> torch.Tensor:
        """Integrate ``t: 0 -> 1`` from ``start [B, C, h, w]`` (the degraded latent, or noise when
        ``concat_lq``) in ``steps`` steps of ``method``; ``z_lq`` is concatenated at every step.
        Returns the latent at ``t = 1``. (Diffusion restorers replace this with their scheduler.)"""
        return integrate(self, start, cond, steps=steps, method=method, z_lq=z_lq, hook=hook,
                         hook_every=hook_every).latent

    def _check_condition(self, cond: Condition, batch: int) -> None:
        if cond.batch_size != batch:
            raise ValueError(f"condition batch {cond.batch_size} != latent batch {batch}")
        if cond.prompt_embeds.shape[-1] != self.joint_attention_dim:
            raise ValueError(
                f"{type(self).__name__} expects prompt_embeds [B, L, {self.joint_attention_dim}], "
                f"got {tuple(cond.prompt_embeds.shape)}"
            )

    def _backbone_velocity(self, x: torch.Tensor, timestep: torch.Tensor, cond: Condition) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract


class SD3UIR(UIRModel):
    """An ``SD3Transformer2DModel`` as UIR; ``cond`` maps to ``encoder_hidden_states`` and ``pooled_projections``."""

    def __init__(self, backbone: SD3Transformer2DModel, concat_lq: bool = False) -> None:
        cfg = backbone.config
        latent_channels = cfg.out_channels if cfg.out_channels is not None else cfg.in_channels
        super().__init__(backbone, latent_channels, concat_lq)
        self.joint_attention_dim = cfg.joint_attention_dim
        self.pooled_projection_dim = cfg.pooled_projection_dim
        expected_in = latent_channels * (2 if concat_lq else 1)
        if cfg.in_channels != expected_in:
            raise ValueError(f"SD3 backbone has in_channels={cfg.in_channels}, expected {expected_in}")

    def _check_condition(self, cond: Condition, batch: int) -> None:
        super()._check_condition(cond, batch)
        if cond.pooled.shape[-1] != self.pooled_projection_dim:
            raise ValueError(
                f"SD3UIR expects pooled [B, {self.pooled_projection_dim}], got {tuple(cond.pooled.shape)}"
            )

    def _backbone_velocity(self, x: torch.Tensor, timestep: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.backbone(
            hidden_states=x, encoder_hidden_states=cond.prompt_embeds, pooled_projections=cond.pooled,
            timestep=timestep, return_dict=False,
        )[0]


class SD15UIR(UIRModel):
    """An SD1.5 ``UNet2DConditionModel`` as UIR (ablation backbone).

    ``cond.prompt_embeds [B, L, cross_attention_dim]`` (SD1.5: 77 x 768) becomes
    ``encoder_hidden_states``; ``cond.pooled`` is unused (use width 0). The UNet receives the same
    ``timestep = (1 - t) * 1000`` as SD3, so ``t = 0`` (degraded) sits at its noisiest timestep.
    Latent sides must be multiples of 2**(number of down blocks - 1) (8 for SD1.5).
    """

    def __init__(self, backbone: UNet2DConditionModel, concat_lq: bool = False) -> None:
        cfg = backbone.config
        super().__init__(backbone, cfg.out_channels, concat_lq)
        self.joint_attention_dim = cfg.cross_attention_dim
        self.pooled_projection_dim = 0
        if cfg.in_channels != cfg.out_channels * (2 if concat_lq else 1):
            raise ValueError(f"UNet has in_channels={cfg.in_channels}, out_channels={cfg.out_channels}")

    def _backbone_velocity(self, x: torch.Tensor, timestep: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.backbone(x, timestep, encoder_hidden_states=cond.prompt_embeds, return_dict=False)[0]


def widen_input_conv(conv: torch.nn.Conv2d, extra_channels: int) -> torch.nn.Conv2d:
    """A copy of ``conv`` taking ``extra_channels`` more inputs whose weights are zero."""
    wide = torch.nn.Conv2d(
        conv.in_channels + extra_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, : conv.in_channels] = conv.weight
        if conv.bias is not None:
            wide.bias.copy_(conv.bias)
    return wide


def _resolve(config: str | dict, presets: dict[str, dict], kind: str) -> dict:
    if isinstance(config, str):
        if config not in presets:
            raise ValueError(f"unknown {kind} preset {config!r}; choose one of {sorted(presets)} or pass a dict")
        return dict(presets[config])
    return dict(config)


def _check_pretrained(loaded: dict, expected: dict, pretrained: str) -> None:
    """Raise if the loaded config contradicts the preset/config the caller named."""
    norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    bad = {k: (loaded[k], v) for k, v in expected.items() if k in loaded and norm(loaded[k]) != norm(v)}
    if bad:
        detail = ", ".join(f"{k}: loaded {a!r} vs config {b!r}" for k, (a, b) in bad.items())
        raise ValueError(f"pretrained {pretrained!r} does not match the requested config ({detail})")


def _dtype(name: str | None) -> torch.dtype | None:
    return getattr(torch, name) if name is not None else None


def build_sd3_transformer(
    pretrained: str | None = None,
    config: str | dict | None = "tiny",
    subfolder: str | None = "transformer",
    concat_lq: bool = False,
    gradient_checkpointing: bool = False,
    torch_dtype: str | None = None,
) -> SD3UIR:
    """Build the SD3(.5) MMDiT UIR.

    Args:
        pretrained: local diffusers folder or hub id to load weights from; None builds a randomly
            initialised model from ``config``.
        config: a preset name (``sd35_medium``, ``sd35_large``, ``tiny``) or a dict of
            ``SD3Transformer2DModel`` arguments. With ``pretrained`` it is checked against the loaded
            config (None skips the check).
        subfolder: the transformer's subfolder inside ``pretrained``.
        concat_lq: widen the input to ``[x_t, z_lq]`` (noisy ablation), extra weights zero.
        gradient_checkpointing: recompute transformer blocks in backward.
        torch_dtype: ``"bfloat16"`` etc. for the backbone's weights; None keeps float32 / the saved dtype.
    """
    if pretrained is not None:
        backbone = SD3Transformer2DModel.from_pretrained(
            pretrained, subfolder=subfolder, torch_dtype=_dtype(torch_dtype)
        )
        if config is not None:
            _check_pretrained(dict(backbone.config), _resolve(config, SD3_PRESETS, "SD3"), pretrained)
    else:
        if config is None:
            raise ValueError("build_sd3_transformer needs `pretrained` or `config`")
        backbone = SD3Transformer2DModel(**_resolve(config, SD3_PRESETS, "SD3"))
        if torch_dtype is not None:
            backbone.to(_dtype(torch_dtype))
    if backbone.config.out_channels is None:
        backbone.register_to_config(out_channels=backbone.config.in_channels)
    if concat_lq:
        extra = backbone.config.out_channels
        backbone.pos_embed.proj = widen_input_conv(backbone.pos_embed.proj, extra)
        backbone.register_to_config(in_channels=backbone.config.in_channels + extra)
    if gradient_checkpointing:
        backbone.enable_gradient_checkpointing()
    return SD3UIR(backbone, concat_lq=concat_lq)


def build_sd15_unet(
    pretrained: str | None = None,
    config: str | dict | None = "sd15",
    subfolder: str | None = "unet",
    concat_lq: bool = False,
    gradient_checkpointing: bool = False,
    torch_dtype: str | None = None,
) -> SD15UIR:
    """Build the SD1.5 UNet UIR (ablation); arguments as :func:`build_sd3_transformer`
    (preset ``sd15``, or a dict of ``UNet2DConditionModel`` arguments)."""
    if pretrained is not None:
        backbone = UNet2DConditionModel.from_pretrained(
            pretrained, subfolder=subfolder, torch_dtype=_dtype(torch_dtype)
        )
        if config is not None:
            _check_pretrained(dict(backbone.config), _resolve(config, SD15_PRESETS, "SD1.5"), pretrained)
    else:
        if config is None:
            raise ValueError("build_sd15_unet needs `pretrained` or `config`")
        backbone = UNet2DConditionModel(**_resolve(config, SD15_PRESETS, "SD1.5"))
        if torch_dtype is not None:
            backbone.to(_dtype(torch_dtype))
    if concat_lq:
        backbone.conv_in = widen_input_conv(backbone.conv_in, backbone.config.out_channels)
        backbone.register_to_config(in_channels=backbone.config.in_channels + backbone.config.out_channels)
    if gradient_checkpointing:
        backbone.enable_gradient_checkpointing()
    return SD15UIR(backbone, concat_lq=concat_lq)
