"""The naive pipeline (pixel IQA -> text -> text encoders -> restore -> decode, per round)."""

from __future__ import annotations

import pytest
import torch
from helpers import spy

from rar.baselines import NaivePipeline
from rar.conditioning.sd3_text import SD3TextConditioner, build_sd3_text_conditioner
from rar.lqa.model import DepictQA
from rar.lqa.tiny import save_tiny_depictqa
from rar.pipeline import LoopConfig
from rar.testing import build_tiny_rar_pipeline, save_tiny_sd3_text_encoders


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    depictqa = save_tiny_depictqa(root / "depictqa", phrases=["noise", "haze", "dark"])
    conditioner = build_sd3_text_conditioner(str(save_tiny_sd3_text_encoders(root / "sd3_text")), t5_max_length=16)
    rar = build_tiny_rar_pipeline(depictqa, LoopConfig(max_rounds=2, steps_per_round=2), uir_layers=1,
                                  max_new_tokens=4)
    return rar, conditioner



def test_text_encoders_encode_and_decode_run_once_per_round(parts, monkeypatch):
    rar, conditioner = parts
    naive = NaivePipeline.from_rar(rar, conditioner, config=LoopConfig(max_rounds=2, steps_per_round=2, stop="fixed"))
    encodes, decodes, texts, encoder_runs = [], [], [], []
    spy(monkeypatch, rar.autoencoder, "encode", encodes)
    spy(monkeypatch, rar.autoencoder, "decode", decodes)
    spy(monkeypatch, SD3TextConditioner, "forward", texts)
    spy(monkeypatch, SD3TextConditioner, "_encode", encoder_runs)
    lq = torch.rand(2, 3, 18, 14)
    out = naive(lq)
    assert len(encodes) == 2 and len(decodes) == 2 and len(texts) == 2
    assert len(encoder_runs) == 2  # the cache is cleared: every round really runs the encoders
    assert [len(call[0][1]) for call in texts] == [2, 2]  # one text per image per round
    assert out.images.shape == lq.shape and set(out.seconds) >= {"assess", "text_encode", "encode", "decode"}
    assert all(len(t.rounds) == 2 and t.rounds[0].text == t.texts[0] for t in out.trajectories)


def test_assessment_and_comparison_read_pixels(parts, monkeypatch):
    rar, conditioner = parts
    naive = NaivePipeline.from_rar(rar, conditioner, config=LoopConfig(max_rounds=1, steps_per_round=1, threshold=0.0))
    assessed, compared = [], []
    spy(monkeypatch, DepictQA, "assess", assessed)
    spy(monkeypatch, DepictQA, "p_better", compared)
    result = naive(torch.rand(1, 3, 16, 16), return_latents=True)
    (args, kwargs), = assessed
    assert args[1].shape == (1, 3, 16, 16) and kwargs["space"] == "pixel"
    (args, kwargs), = compared
    assert args[1].shape == args[2].shape == (1, 3, 16, 16) and kwargs["space"] == "pixel"
    record = result.trajectories[0].rounds[0]
    assert record.accepted and record.latent.shape == (3, 16, 16)
    torch.testing.assert_close(result.images[0], record.latent)


def test_from_pretrained_reads_the_text_encoders_from_the_folder(parts, tmp_path):
    rar, conditioner = parts
    folder = rar.save_pretrained(tmp_path / "model", conditioner=conditioner)
    loaded = NaivePipeline.from_pretrained(folder, stop="fixed", max_rounds=1)
    reference = NaivePipeline.from_rar(rar, conditioner, config=loaded.config)
    lq = torch.rand(1, 3, 12, 12)
    assert torch.equal(loaded(lq).images, reference(lq).images)
    with pytest.raises(ValueError, match="no text encoders"):
        NaivePipeline.from_pretrained(rar.save_pretrained(tmp_path / "without"))
