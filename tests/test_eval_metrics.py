"""Metrics of the evaluation harness: AgenticIR's pyiqa settings, the x4 rule, the weights check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rar.degradations.resize import imresize
from rar.eval.metrics import METRICS, MetricSuite, SizeMismatchError, match_reference_size, quantize_8bit
from rar.eval.weights import MissingWeightsError, WeightDirs, check_weights, missing_weights
from rar.utils.image_io import load_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "samples"
CROP = (slice(None), slice(40, 104), slice(64, 128))  # 64x64: pyiqa's SSIM is slow on 2 shared cores


@pytest.fixture(scope="module")
def fidelity() -> MetricSuite:
    return MetricSuite(["psnr", "ssim"])


def _sample_pair(combination: str = "noise+jpeg compression artifact") -> tuple[torch.Tensor, torch.Tensor]:
    lq = load_image(SAMPLES / "LQ" / "d2" / combination / "coffee.png")
    hq = load_image(SAMPLES / "HQ" / "coffee.png")
    return lq[CROP], hq[CROP]


def test_psnr_ssim_equal_direct_pyiqa_with_agenticir_settings(fidelity):
    import pyiqa

    lq, hq = _sample_pair()
    ours = fidelity.score(lq, hq, "coffee.png")
    psnr_rgb = pyiqa.create_metric("psnr", test_y_channel=False, device="cpu")(lq[None], hq[None]).item()
    ssim_y = pyiqa.create_metric("ssim", test_y_channel=True, device="cpu")(lq[None], hq[None]).item()
    assert ours["psnr"] == pytest.approx(psnr_rgb, abs=1e-6)
    assert ours["ssim"] == pytest.approx(ssim_y, abs=1e-9)
    # the settings matter: PSNR on Y differs from PSNR on RGB for a colour image
    psnr_y = pyiqa.create_metric("psnr", test_y_channel=True, device="cpu")(lq[None], hq[None]).item()
    assert abs(psnr_y - ours["psnr"]) > 0.1
    assert 5 < ours["psnr"] < 40 and 0 < ours["ssim"] < 1


def test_x4_rule_upscales_quarter_size_output_with_matlab_bicubic(fidelity):
    _, hq = _sample_pair()
    small = quantize_8bit(imresize(hq[None], scale=0.25)[0])
    assert small.shape[-2:] == (16, 16)
    expected = imresize(small[None], scale=4)[0].clamp(0, 1)
    prepared = match_reference_size(small, (64, 64), "x.png")
    torch.testing.assert_close(prepared, expected)
    import pyiqa

    direct = pyiqa.create_metric("psnr", test_y_channel=False, device="cpu")(expected[None], hq[None]).item()
    assert fidelity.score(small, hq, "x.png")["psnr"] == pytest.approx(direct, abs=1e-6)
    assert match_reference_size(hq, (64, 64), "same.png") is hq


@pytest.mark.parametrize("size", [(15, 16), (32, 32), (64, 63), (17, 17)])
def test_size_mismatch_names_file_and_both_sizes(size):
    with pytest.raises(SizeMismatchError) as error:
        match_reference_size(torch.rand(3, *size), (64, 64), "d2/rain+haze/cat.png")
    message = str(error.value)
    assert "d2/rain+haze/cat.png" in message and f"{size[0]}x{size[1]}" in message and "64x64" in message


def test_outputs_are_scored_as_8bit_images(fidelity):
    _, hq = _sample_pair()
    out = (hq + 0.3 / 255).clamp(0, 1)  # below half a grey level: the 8-bit PNG equals hq
    assert fidelity.score(out, hq, "x.png")["psnr"] > 60


def test_psnr_ssim_need_no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert missing_weights(["psnr", "ssim"]) == {}
    suite = MetricSuite(["psnr", "ssim"])
    assert set(suite.score(torch.rand(3, 16, 16), torch.rand(3, 16, 16), "x").keys()) == {"psnr", "ssim"}


def test_missing_weights_are_listed_with_their_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    dirs = WeightDirs.current()
    assert dirs.torch_hub == tmp_path / "hub"
    with pytest.raises(MissingWeightsError) as error:
        MetricSuite(["psnr", "lpips", "musiq", "clipiqa"])
    message = str(error.value)
    assert str(tmp_path / "hub" / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth") in message
    assert str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in message
    assert str(tmp_path / "hub" / "pyiqa" / "musiq_koniq_ckpt-e95806b9.pth") in message
    assert str(tmp_path / "hub" / "clip" / "RN50.pt") in message
    assert "psnr:" not in message and "metrics=[psnr,ssim]" in message


def test_weights_check_passes_once_files_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    missing = missing_weights(["musiq", "niqe"])
    for files in missing.values():
        for weight in files:
            weight.path.parent.mkdir(parents=True, exist_ok=True)
            weight.path.write_bytes(b"")
    check_weights(["musiq", "niqe"])  # no error: every file is in place


def test_timm_backbones_are_looked_up_in_the_hf_cache(tmp_path):
    dirs = WeightDirs(torch_hub=tmp_path / "hub", hf_cache=tmp_path / "hf")
    missing = missing_weights(["maniqa", "nima"], dirs)
    repos = {w.hf_repo for files in missing.values() for w in files if w.hf_repo}
    assert repos == {"timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", "timm/inception_resnet_v2.tf_in1k"}
    snapshot = tmp_path / "hf" / "models--timm--inception_resnet_v2.tf_in1k"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("abc")
    (snapshot / "snapshots" / "abc").mkdir(parents=True)
    (snapshot / "snapshots" / "abc" / "model.safetensors").write_bytes(b"")
    still = missing_weights(["nima"], dirs)["nima"]
    assert [w.hf_repo for w in still] == [None]  # only NIMA's own head is left


def test_every_metric_has_a_weight_rule_and_settings():
    from rar.eval.weights import REQUIREMENTS

    assert list(METRICS) == list(REQUIREMENTS)
    assert METRICS["psnr"].options == {"test_y_channel": False}
    assert METRICS["ssim"].options["test_y_channel"] is True
    assert METRICS["lpips"].options == {"net": "alex", "version": "0.1"} and METRICS["lpips"].lower_better
