"""The model folder: save_pretrained / from_pretrained round trips, LoRA as adapter or merged, components."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKL
from peft import PeftModel

from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig, RARPipeline
from rar.pipeline.model_folder import (
    load_component,
    load_module,
    realign,
    save_component,
    save_module,
)
from rar.testing import build_tiny_rar_pipeline
from rar.uir.autoencoders import KLAutoencoder
from rar.uir.backbones import SD15UIR, build_sd15_unet

SMALL_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=24, attention_head_dim=4, norm_num_groups=8,
)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = save_tiny_depictqa(tmp_path_factory.mktemp("depictqa"), phrases=["noise", "haze", "dark"])
    config = LoopConfig(max_rounds=2, steps_per_round=2, assess_every=1, prompt_pool="random", threshold=0.0)
    return build_tiny_rar_pipeline(folder, config, uir_layers=1, max_new_tokens=4, lora_std=0.05)


def llm_logits(lqa, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return lqa.llm(input_ids=ids).logits


def test_from_pretrained_round_trip_is_bit_identical(pipe, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["uir"] == ["rar.uir.backbones.SD3UIR", "uir"] and index["conditioner"] is None
    assert index["lqa"] == ["rar.lqa.model.DepictQA", "lqa"]
    assert (folder / "lqa/lora/adapter_config.json").is_file() and (folder / "lqa/llm/config.json").is_file()
    loaded = RARPipeline.from_pretrained(folder)
    assert loaded.config == pipe.config and isinstance(loaded.lqa.llm, PeftModel)
    lq = torch.rand(2, 3, 14, 22, generator=torch.Generator().manual_seed(0))
    a, b = pipe(lq, return_latents=True), loaded(lq, return_latents=True)
    assert torch.equal(a.images, b.images)
    for ta, tb in zip(a.trajectories, b.trajectories, strict=True):
        assert ta.texts == tb.texts and [r.p_better for r in ta.rounds] == [r.p_better for r in tb.rounds]
        assert all(torch.equal(x.latent, y.latent) for x, y in zip(ta.rounds, tb.rounds, strict=True))
    assert RARPipeline.from_pretrained(folder, max_rounds=1).config.max_rounds == 1
    with pytest.raises(FileExistsError, match="overwrite"):
        pipe.save_pretrained(folder)


def test_merged_lora_folds_the_adapter_into_the_llm(pipe, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "merged", lora="merged")
    assert not (folder / "lqa/lora").exists()
    loaded = RARPipeline.from_pretrained(folder)
    assert not isinstance(loaded.lqa.llm, PeftModel)
    ids = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(0))
    reference = llm_logits(pipe.lqa, ids)
    with pipe.lqa.llm.disable_adapter():
        without_lora = llm_logits(pipe.lqa, ids)
    assert (reference - without_lora).abs().max() > 1e-3  # the adapter matters, so the check below means something
    torch.testing.assert_close(llm_logits(loaded.lqa, ids), reference, atol=1e-4, rtol=1e-4)
    assert isinstance(pipe.lqa.llm, PeftModel)  # saving left the live model untouched


def test_dtype_and_device_on_load(pipe, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "model")
    loaded = RARPipeline.from_pretrained(folder, device="cpu", dtype="bfloat16")
    dtypes = {p.dtype for name, p in loaded.named_parameters() if "lora_" not in name}
    assert dtypes == {torch.bfloat16}
    out = loaded(torch.rand(1, 3, 8, 8))
    assert out.images.dtype == torch.float32 and torch.isfinite(out.images).all()
    with pytest.raises(ValueError, match="floating-point torch dtype"):
        RARPipeline.from_pretrained(folder, dtype="int8")


def test_small_modules_rebuild_from_their_config(pipe, tmp_path):
    for name, module in [("abstractor", pipe.lqa.abstractor), ("image_adapter", pipe.lqa.image_adapter),
                         ("vision_proj", pipe.lqa.vision_proj), ("text_adapter", pipe.text_adapter)]:
        save_module(module, tmp_path / name)
        again = load_module(tmp_path / name)
        assert type(again) is type(module)
        for (k, v), (k2, v2) in zip(module.state_dict().items(), again.state_dict().items(), strict=True):
            assert k == k2 and torch.equal(v, v2)
    with pytest.raises(TypeError, match="cannot save"):
        save_module(torch.nn.Conv2d(1, 1, 1), tmp_path / "conv")


def test_kl_autoencoder_and_sd15_components_round_trip(tmp_path):
    torch.manual_seed(0)
    vae = AutoencoderKL(latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        norm_num_groups=4, sample_size=16)
    ae = KLAutoencoder(vae, scaling_factor=1.5, shift_factor=0.1)
    ae_again = realign(load_component(save_component(ae, tmp_path / "ae"), tmp_path / "ae"))
    x = torch.rand(1, 3, 16, 16)
    assert (ae_again.scaling_factor, ae_again.shift_factor) == (1.5, 0.1)
    assert torch.equal(ae.encode(x), ae_again.encode(x))
    unet = build_sd15_unet(config=SMALL_UNET)
    unet_again = load_component(save_component(unet, tmp_path / "unet"), tmp_path / "unet")
    assert isinstance(unet_again, SD15UIR) and not unet_again.concat_lq
    for (k, v), (k2, v2) in zip(unet.state_dict().items(), unet_again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a RAR model folder"):
        RARPipeline.from_pretrained(tmp_path)
