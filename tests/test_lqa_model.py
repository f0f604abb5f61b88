"""The LQA model: both image paths, the assessment API, the text adapter, real-size shapes, conversion."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from rar.conditioning.sd3_text import build_sd3_text_conditioner
from rar.lqa.abstractor import Abstractor
from rar.lqa.architectures import clip_vit_l14_config, vicuna_7b_v15_config
from rar.lqa.convert import convert_depictqa_state, write_init_dir
from rar.lqa.factory import build_depictqa, build_skeleton
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.prompts import COMPARE_QUESTION, COMPARE_TASK, Turn, build_layout
from rar.lqa.text_adapter import TextAdapter
from rar.lqa.tiny import save_tiny_depictqa
from rar.testing import save_tiny_sd3_text_encoders
from rar.training.checkpoint import load_init

ROOT = Path(__file__).resolve().parents[1]


def _tiny_parts():
    torch.manual_seed(0)
    return Abstractor(64, 16, 2, 4, 128), LatentImageAdapter(16, 64, 16, width=64, nhead=4, dim_feedforward=128,
                                                              encoder_layers=1, decoder_layers=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_depictqa(tmp_path_factory.mktemp("depictqa"), phrases=["noise", "haze", "dark"])


@pytest.fixture(scope="module")
def lqa(folder):
    abstractor, adapter = _tiny_parts()
    return build_depictqa(str(folder / "llm"), abstractor, str(folder / "vision"), adapter, image_space="latent").eval()


def test_training_loss_reaches_adapter_and_lora_only(lqa):
    layout = build_layout(COMPARE_TASK, [Turn("human", COMPARE_QUESTION), Turn("gpt", "Image A")])
    z = torch.randn(2, 16, 16, 16)
    out = lqa([layout], z)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and 0 <= float(out.accuracy) <= 1
    lqa.zero_grad()
    out.loss.backward()
    grads = {n for n, p in lqa.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("image_adapter.") for n in grads) and any("lora_B" in n for n in grads)
    assert any(n.startswith("vision_proj.") for n in grads)
    assert not any(n.startswith("vision_encoder.") or "base_layer" in n or "embed_tokens" in n for n in grads)
    lqa.zero_grad()
    with pytest.raises(ValueError, match="image slots"):
        lqa([layout], z[:1])


def test_latent_adapter_handles_any_latent_size(lqa):
    for h, w in ((16, 16), (12, 20), (7, 9)):
        assert lqa.latent_tokens(torch.randn(2, 16, h, w)).shape == (2, 16, 64)
    assert lqa.pixel_tokens(torch.rand(2, 3, 60, 52)).shape == (2, 16, 64)  # padded to patch multiples
    with pytest.raises(ValueError, match="latents"):
        lqa.latent_tokens(torch.randn(2, 48, 8, 8))


@torch.no_grad()
def test_assessment_api_shapes_and_batch_independence(lqa):
    z = torch.randn(3, 16, 16, 16)
    a = lqa.assess(z, max_new_tokens=5)
    assert a.hidden.shape[0] == 3 and a.hidden.shape[2] == 128 and a.mask.shape == a.hidden.shape[:2]
    assert a.hidden.shape[1] <= 5 and a.mask[:, 0].all() and len(a.text) == 3
    single = lqa.assess(z[1:2], max_new_tokens=5)
    n = int(single.mask.sum())
    assert a.tokens[1, :n].tolist() == single.tokens[0, :n].tolist()
    torch.testing.assert_close(a.hidden[1, :n], single.hidden[0, :n], atol=1e-4, rtol=1e-4)
    c = lqa.p_better(z, z.flip(0))
    assert c.p_better.shape == (3,) and ((c.p_better >= 0) & (c.p_better <= 1)).all()
    torch.testing.assert_close(lqa.p_better(z[:1], z[2:]).p_better, c.p_better[:1], atol=1e-5, rtol=1e-4)
    texts = lqa.describe(torch.rand(2, 3, 64, 64), space="pixel", max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_text_adapter_matches_conditioner_shapes(tmp_path):
    conditioner = build_sd3_text_conditioner(str(save_tiny_sd3_text_encoders(tmp_path / "sd3")), t5_max_length=16)
    target = conditioner(["noise, haze", "dark"])
    torch.manual_seed(0)
    adapter = TextAdapter(llm_dim=128, seq_len=32, joint_dim=64, pooled_dim=48, width=64, nhead=4, dim_feedforward=128)
    adapter.eval()
    hidden = torch.randn(2, 7, 128)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    cond = adapter(hidden, mask)
    assert cond.prompt_embeds.shape == target.prompt_embeds.shape == (2, 32, 64)
    assert cond.pooled.shape == target.pooled.shape == (2, 48)
    changed = hidden.clone()
    changed[0, 3:] = 100.0  # masked positions must not matter
    torch.testing.assert_close(adapter(changed, mask).prompt_embeds, cond.prompt_embeds)
    torch.testing.assert_close(adapter(changed, mask).pooled, cond.pooled)


def test_real_size_depictqa_on_meta_device():
    with torch.device("meta"):
        model = build_skeleton(
            vicuna_7b_v15_config(), Abstractor(1024, 64, 4, 8, 2048, 0.1), clip_vit_l14_config(),
            LatentImageAdapter(16, 1024, 64, width=1024, patch_size=2, encoder_layers=2, decoder_layers=4,
                               nhead=16, dim_feedforward=4096),
        )
        adapter = TextAdapter(4096, 333, 4096, 2048, width=1024, nhead=16, dim_feedforward=4096)

    def count(module, keep=lambda n: True):
        return sum(p.numel() for n, p in module.named_parameters() if keep(n))

    assert count(model.llm, lambda n: "lora_" not in n) == 6_738_415_616  # Vicuna-7B / LLaMA-2-7B
    assert count(model.llm, lambda n: "lora_" in n) == 32 * 4 * 2 * 16 * 4096  # r=16 on q,k,v,o
    assert count(model.vision_encoder) == 303_179_776  # CLIP ViT-L/14 vision tower
    per_layer = 2 * (4 * 1024 * 1024 + 4 * 1024) + (1024 * 2048 + 2048) + (2048 * 1024 + 1024) + 3 * 2 * 1024
    assert count(model.abstractor) == 4 * per_layer + 64 * 1024
    assert count(model.vision_proj) == 1024 * 4096 + 4096
    assert model.num_queries == 64 and model.hidden_size == 4096
    assert 50e6 < count(model.image_adapter) < 100e6 and 30e6 < count(adapter) < 80e6


def test_depictqa_checkpoint_converts_and_loads(lqa, tmp_path):
    # a synthetic checkpoint in DepictQA's layout: its trainable tensors, fp16, peft-0.2-style LoRA names
    source = {}
    for name, value in lqa.state_dict().items():
        if name.startswith(("vision_proj.", "abstractor.")) or ".lora_" in name:
            source[name.replace(".default.weight", ".weight")] = torch.randn_like(value).half()
    tensors = convert_depictqa_state(source, lqa)
    assert len(tensors) == len(source) and all(v.dtype == torch.float32 for v in tensors.values())
    write_init_dir(tensors, tmp_path / "released", source="synthetic")

    abstractor, adapter = _tiny_parts()
    fresh = build_depictqa(str(lqa_folder(lqa)), abstractor, None, adapter, image_space="latent")
    stage = torch.nn.Module()
    stage.lqa = fresh
    loaded = load_init(stage, tmp_path / "released")
    assert len(loaded) == len(source)
    for key, value in source.items():
        name = key.replace(".weight", ".default.weight") if ".lora_" in key else key
        torch.testing.assert_close(fresh.state_dict()[name], value.float())

    # the script, on a DepictQA-style ckpt.pt, with the tiny architecture's configs
    torch.save({"module." + k: v for k, v in source.items()}, tmp_path / "ckpt.pt")
    spec = importlib.util.spec_from_file_location("convert_depictqa", ROOT / "scripts" / "convert_depictqa.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folder = Path(lqa_folder(lqa)).parent
    script.main(["--ckpt", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "script"),
                 "--lqa-config", str(ROOT / "configs/lqa/tiny.yaml"),
                 "--llm-config", str(folder / "llm"), "--vision-config", str(folder / "vision")])
    assert len(load_init(stage, tmp_path / "script")) == len(source)

    with pytest.raises(KeyError, match="no counterpart"):
        convert_depictqa_state(source | {"llm.extra.weight": torch.zeros(1)}, lqa)
    bad = dict(source)
    bad["vision_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="shape mismatch"):
        convert_depictqa_state(bad, lqa)
    with pytest.raises(KeyError, match="missing"):
        convert_depictqa_state({k: v for k, v in source.items() if "lora" not in k}, lqa)


def lqa_folder(model) -> str:
    return model.base_llm.config._name_or_path


def test_lqa_condition_source_feeds_the_text_adapter(lqa):
    from rar.conditioning.sources import ConditionInputs
    from rar.lqa.condition_source import LQACondition
    from rar.testing import build_tiny_autoencoder

    torch.manual_seed(0)
    adapter = TextAdapter(128, 32, 64, 48, width=64, nhead=4, dim_feedforward=128)
    modules = {"autoencoder": build_tiny_autoencoder(), "lqa": lqa.train(), "text_adapter": adapter}
    z = modules["autoencoder"].encode(torch.rand(2, 3, 32, 32))
    source = LQACondition()
    assert set(source.requires) == set(modules)
    cond = source(modules, ConditionInputs(z_lq=z))
    assert cond.prompt_embeds.shape == (2, 32, 64) and cond.pooled.shape == (2, 48)
    assert lqa.training  # its mode is restored after the deterministic assessment
    torch.testing.assert_close(source(modules, ConditionInputs(z_lq=z)).pooled, cond.pooled)
    lqa.image_space = "pixel"  # the "Pixel" ablation reads the decoded image
    try:
        assert source(modules, ConditionInputs(z_lq=z)).pooled.shape == (2, 48)
    finally:
        lqa.image_space = "latent"
        lqa.eval()


def test_evaluation_scores_phrase_sets_and_preferences(lqa):
    from rar.lqa.datasets import LQASample
    from rar.lqa.evaluation import evaluate_lqa, phrase_set
    from rar.lqa.prompts import COMPARE_TASK, IDENTIFY_TASK, SINGLE_Q_TAIL
    from rar.testing import build_tiny_autoencoder

    assert phrase_set("Noise, haze") == phrase_set("haze and noise.") == {"noise", "haze"}
    assert phrase_set("None") == frozenset()
    images = torch.rand(4, 3, 32, 32)
    ident = LQASample(build_layout(IDENTIFY_TASK, [Turn("human", "Q" + SINGLE_Q_TAIL), Turn("gpt", "Noise")]),
                      images[:1], float("nan"), "i")
    comp = LQASample(build_layout(COMPARE_TASK, [Turn("human", "Q"), Turn("gpt", "Image B")]), images[1:3], 0.0, "c")
    acc = evaluate_lqa(lqa, [ident, comp, comp], "latent", encode=build_tiny_autoencoder().encode)
    assert (acc.n_identify, acc.n_compare) == (1, 2)
    assert acc.identification in (0.0, 1.0) and acc.comparison in (0.0, 1.0)  # both comparisons are the same pair
    with pytest.raises(ValueError, match="encode"):
        evaluate_lqa(lqa, [ident], "latent")
