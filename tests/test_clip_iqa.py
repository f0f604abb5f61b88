"""The CLIP-IQA ablation: the zero-shot degradation classifier, its pipeline and the method configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import spy
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from transformers import CLIPConfig, CLIPModel

from rar.baselines.clip_iqa import (
    PROMPT_TEMPLATE,
    SA_CLIP_LABELS,
    CLIPDegradationClassifier,
    ClipIQAPipeline,
)
from rar.conditioning.sd3_text import SD3TextConditioner, build_sd3_text_conditioner
from rar.eval.method import Method
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig
from rar.testing import (
    build_tiny_rar_pipeline,
    build_word_tokenizer,
    save_tiny_sd3_text_encoders,
)

REPO = Path(__file__).resolve().parents[1]


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random CLIPModel (text 32-d, vision 32-d at 32 px) + word tokenizer over the label prompts."""
    words = " ".join(PROMPT_TEMPLATE.format(label=label) for label in SA_CLIP_LABELS).split()
    tokenizer = build_word_tokenizer(words, max_length=16)
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
           "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=16, **ids),
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """CLIP folder, SD3.5 text-encoder folder, a model folder with conditioner/ and one without."""
    root = tmp_path_factory.mktemp("clip_iqa")
    clip = save_tiny_clip(root / "clip")
    sd3 = save_tiny_sd3_text_encoders(root / "sd3_text")
    conditioner = build_sd3_text_conditioner(str(sd3), t5_max_length=16)
    depictqa = save_tiny_depictqa(root / "depictqa", phrases=["noise", "haze"])
    rar = build_tiny_rar_pipeline(depictqa, LoopConfig(max_rounds=2, steps_per_round=1), uir_layers=1,
                                  max_new_tokens=2)
    with_text = rar.save_pretrained(root / "model", conditioner=conditioner)
    without = rar.save_pretrained(root / "model_no_text")
    return {"clip": clip, "sd3": sd3, "model": with_text, "model_no_text": without}



def test_classifier_matches_clip_and_embeds_the_prompts_once(parts, monkeypatch):
    text_runs = []
    spy(monkeypatch, CLIPModel, "get_text_features", text_runs)
    classifier = CLIPDegradationClassifier.from_pretrained(parts["clip"])
    images = torch.rand(3, 3, 40, 24, generator=torch.Generator().manual_seed(0))
    first = classifier.classify(images)
    second = classifier.classify(images[:1])
    assert len(text_runs) == 1  # at construction only
    assert first.probs.shape == (3, len(SA_CLIP_LABELS)) and second.probs.shape == (1, len(SA_CLIP_LABELS))
    torch.testing.assert_close(first.probs.sum(-1), torch.ones(3))
    assert first.labels == [SA_CLIP_LABELS[i] for i in first.probs.argmax(-1).tolist()]
    torch.testing.assert_close(second.probs, first.probs[:1])
    # the same numbers as CLIPModel's own forward on the preprocessed pixels
    tokens = classifier.tokenizer(classifier.prompts, padding="max_length", return_tensors="pt")
    reference = classifier.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                 pixel_values=classifier.preprocess(images)).logits_per_image.softmax(-1)
    torch.testing.assert_close(first.probs, reference)
    assert classifier.preprocess(images).shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match=r"images \[B,3,H,W\], got \(3, 40, 24\)"):
        classifier.classify(images[0])


def test_pipeline_restores_a_batch_and_encodes_the_label_once_per_round(parts, monkeypatch):
    pipe = ClipIQAPipeline.from_pretrained(parts["model"], parts["clip"], max_rounds=2, steps_per_round=1)
    assert isinstance(pipe, Method) and pipe.config.stop == "fixed"
    texts, encoder_runs = [], []
    spy(monkeypatch, SD3TextConditioner, "forward", texts)
    spy(monkeypatch, SD3TextConditioner, "_encode", encoder_runs)
    lq = torch.rand(2, 3, 18, 14, generator=torch.Generator().manual_seed(1))
    out = pipe.restore(lq)
    assert len(encoder_runs) == 2  # the cache is cleared: the encoders run every round
    assert out.images.shape == lq.shape and 0 <= out.images.min() and out.images.max() <= 1
    assert not torch.equal(out.images, lq)
    assert out.rounds == [2, 2] and all(label in SA_CLIP_LABELS for labels in out.labels for label in labels)
    assert list(texts[0][0][1]) == [labels[0] for labels in out.labels]  # round 1 encodes the CLIP labels
    assert set(out.seconds) >= {"assess", "text_encode", "encode", "decode", "restore"}


def test_conditioner_from_an_sd3_folder_gives_the_same_result(parts):
    lq = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    from_folder = ClipIQAPipeline.from_pretrained(parts["model"], parts["clip"], max_rounds=1, steps_per_round=1)
    separate = ClipIQAPipeline.from_pretrained(parts["model_no_text"], parts["clip"], conditioner=parts["sd3"],
                                               t5_max_length=16, max_rounds=1, steps_per_round=1)
    assert torch.equal(from_folder(lq).images, separate(lq).images)
    with pytest.raises(ValueError, match="no text encoders"):
        ClipIQAPipeline.from_pretrained(parts["model_no_text"], parts["clip"])
    with pytest.raises(ValueError, match="stop must be 'fixed'"):
        ClipIQAPipeline.from_pretrained(parts["model"], parts["clip"], stop="compare")


def test_method_configs_compose_and_build(parts):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        naive = compose("eval", overrides=["method=naive", f"method.target.path={parts['model']}"])
        clip = compose("eval", overrides=[
            "method=clip_iqa", f"method.target.path={parts['model']}", f"method.target.clip={parts['clip']}",
            "method.target.conditioner=null", "+method.target.max_rounds=1",
        ])
    assert naive.method.name == "naive" and clip.method.name == "clip_iqa"
    assert naive.method.target._target_ == "rar.baselines.NaivePipeline.from_pretrained"
    method = instantiate(clip.method.target)
    assert isinstance(method, ClipIQAPipeline) and method.config.max_rounds == 1 and method.config.stop == "fixed"
    assert method.restore(torch.rand(1, 3, 16, 16)).rounds == [1]
