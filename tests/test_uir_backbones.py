"""UIR backbones: published sizes on the meta device, the sigma/velocity conversion, input widening."""

from __future__ import annotations

import pytest
import torch
from diffusers import SD3Transformer2DModel

from rar.conditioning.condition import Condition
from rar.uir.backbones import (
    SD3_PRESETS,
    SD3UIR,
    SD15UIR,
    build_sd3_transformer,
    build_sd15_unet,
)

SMALL_SD3 = dict(
    SD3_PRESETS["tiny"], num_layers=2, attention_head_dim=16, num_attention_heads=2, caption_projection_dim=32
)
SMALL_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=24, attention_head_dim=4, norm_num_groups=8,
)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "preset, params, published, with_table",
    [
        # `params` are trainable parameters; the SD3.5 checkpoints also store the fixed sin-cos
        # pos-embed table (medium: 384^2 x 1536 = 226.5M -> 2.47B, published "2.5B";
        # large: 192^2 x 2432 = 89.7M -> 8.15B, published "8.1B"). Tiny: DESIGN.md's 2.3M parameters.
        ("sd35_medium", 2_243_171_520, 2.5e9, True),
        ("sd35_large", 8_056_627_520, 8.1e9, True),
        ("tiny", 2_278_160, 2.3e6, False),
    ],
)
def test_sd3_presets_have_the_published_sizes(preset, params, published, with_table):
    with torch.device("meta"):
        uir = build_sd3_transformer(config=preset)
    n = count(uir)
    table = uir.backbone.pos_embed.pos_embed.numel()
    print(f"{preset}: {n:,} parameters (+ {table:,} pos-embed buffer = {n + table:,})")
    assert n == params
    assert abs(n + table * with_table - published) / published < 0.03
    assert uir.backbone.config.in_channels == SD3_PRESETS[preset]["in_channels"]


def test_sd15_preset_has_the_published_size():
    with torch.device("meta"):
        uir = build_sd15_unet(config="sd15")
    print(f"sd15: {count(uir):,} parameters")
    assert count(uir) == 859_520_964  # SD1.5 UNet
    assert (uir.joint_attention_dim, uir.pooled_projection_dim, uir.latent_channels) == (768, 0, 4)


def sd3_inputs(batch: int = 2, size: int = 6):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 16, size, size, generator=g)
    cond = Condition(torch.randn(batch, 5, 64, generator=g), torch.randn(batch, 48, generator=g))
    return x, torch.tensor([0.2, 0.7])[:batch], cond


def test_uir_model_converts_to_and_from_sd3_convention():
    torch.manual_seed(0)
    uir = build_sd3_transformer(config=SMALL_SD3)
    x, t, cond = sd3_inputs()
    with torch.no_grad():
        v = uir(x, t, cond)
        raw = uir.backbone(hidden_states=x, encoder_hidden_states=cond.prompt_embeds,
                           pooled_projections=cond.pooled, timestep=(1 - t) * 1000).sample
    assert v.shape == x.shape
    assert torch.allclose(v, -raw, atol=1e-6)


def test_concat_lq_widens_with_zero_weights_so_z_lq_is_initially_ignored():
    torch.manual_seed(0)
    plain = build_sd3_transformer(config=SMALL_SD3)
    torch.manual_seed(0)
    wide = build_sd3_transformer(config=SMALL_SD3, concat_lq=True)
    assert wide.backbone.config.in_channels == 32 and wide.backbone.pos_embed.proj.in_channels == 32
    assert torch.all(wide.backbone.pos_embed.proj.weight[:, 16:] == 0)
    x, t, cond = sd3_inputs()
    with torch.no_grad():
        assert torch.allclose(wide(x, t, cond, z_lq=torch.randn_like(x)), plain(x, t, cond), atol=1e-6)
    with pytest.raises(ValueError, match="z_lq must be given"):
        wide(x, t, cond)
    with pytest.raises(ValueError, match="z_lq must be None"):
        plain(x, t, cond, z_lq=x)


def test_condition_and_input_shapes_are_checked():
    uir = build_sd3_transformer(config=SMALL_SD3)
    x, t, cond = sd3_inputs()
    with pytest.raises(ValueError, match="prompt_embeds"):
        uir(x, t, Condition(cond.prompt_embeds[..., :32], cond.pooled))
    with pytest.raises(ValueError, match="pooled"):
        uir(x, t, Condition(cond.prompt_embeds, cond.pooled[:, :16]))
    with pytest.raises(ValueError, match="x_t"):
        uir(x[:, :8], t, cond)
    with pytest.raises(ValueError, match="t of shape"):
        uir(x, t[:1], cond)


def test_pretrained_folder_loads_and_is_checked_against_the_config(tmp_path):
    torch.manual_seed(0)
    SD3Transformer2DModel(**SMALL_SD3).save_pretrained(tmp_path / "transformer")
    uir = build_sd3_transformer(pretrained=str(tmp_path), config=SMALL_SD3)
    ref = SD3Transformer2DModel.from_pretrained(tmp_path / "transformer")
    x, t, cond = sd3_inputs()
    with torch.no_grad():
        raw = ref(hidden_states=x, encoder_hidden_states=cond.prompt_embeds,
                  pooled_projections=cond.pooled, timestep=(1 - t) * 1000).sample
        assert torch.allclose(uir(x, t, cond), -raw, atol=1e-6)
    with pytest.raises(ValueError, match="num_layers: loaded 2 vs config 4"):
        build_sd3_transformer(pretrained=str(tmp_path), config="tiny")
    with pytest.raises(ValueError, match="unknown SD3 preset"):
        build_sd3_transformer(config="sd4")


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        uir = build_sd3_transformer(config=SMALL_SD3, gradient_checkpointing=checkpointing)
        assert uir.backbone.gradient_checkpointing is checkpointing
        x, t, cond = sd3_inputs()
        uir(x, t, cond).square().mean().backward()
        grads.append(uir.backbone.transformer_blocks[0].attn.to_q.weight.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_sd15_unet_maps_condition_to_encoder_hidden_states():
    torch.manual_seed(0)
    uir = build_sd15_unet(config=SMALL_UNET)
    assert isinstance(uir, SD15UIR) and uir.pooled_projection_dim == 0
    x = torch.randn(2, 4, 8, 8)
    t = torch.tensor([0.1, 0.9])
    cond = Condition(torch.randn(2, 7, 24), torch.zeros(2, 0))
    with torch.no_grad():
        v = uir(x, t, cond)
        raw = uir.backbone(x, (1 - t) * 1000, encoder_hidden_states=cond.prompt_embeds).sample
    assert torch.allclose(v, -raw, atol=1e-6)
    wide = build_sd15_unet(config=SMALL_UNET, concat_lq=True)
    assert wide.backbone.conv_in.in_channels == 8
    assert wide(x, t, cond, z_lq=x).shape == x.shape


def test_sd3_uir_type():
    assert isinstance(build_sd3_transformer(config=SMALL_SD3), SD3UIR)


def test_bf16_backbone_keeps_float32_io_and_timestep_precision():
    torch.manual_seed(0)
    uir = build_sd3_transformer(config=SMALL_SD3, torch_dtype="bfloat16")
    x, _, cond = sd3_inputs(batch=1)
    with torch.no_grad():
        v0 = uir(x, torch.tensor([0.0]), cond)
        v1 = uir(x, torch.tensor([0.002]), cond)  # timesteps 1000 vs 998: equal once rounded to bf16
    assert v0.dtype == torch.float32
    assert not torch.equal(v0, v1)
