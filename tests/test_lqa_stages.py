"""The LQA stages: each lowers its loss through the shared loop; the stage configs compose and run;
a briefly trained tiny LQA prefers the clean image whichever slot it is in."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from rar.conditioning.sd3_text import build_sd3_text_conditioner
from rar.degradations import DegradationLabel
from rar.lqa.abstractor import Abstractor
from rar.lqa.datasets import LQASample, SyntheticIQADataset, collate_lqa
from rar.lqa.factory import build_depictqa
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.prompts import (
    COMPARE_QUESTION,
    COMPARE_TASK,
    SINGLE_Q_TAIL,
    Turn,
    build_layout,
)
from rar.lqa.text_adapter import TextAdapter
from rar.testing import build_tiny_autoencoder
from rar.training.build import build_stage
from rar.training.loop import TrainConfig, train
from rar.training.phases import Phase
from rar.training.stages.cond_align import CondAlignStage
from rar.training.stages.iqa_pretrain import IQAPretrainStage
from rar.training.stages.lqa_align import LQAAlignStage
from rar.training.stages.lqa_finetune import LQAFinetuneStage

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _lqa(tiny_dir, image_space="latent"):
    torch.manual_seed(0)
    return build_depictqa(
        str(tiny_dir / "depictqa/llm"), Abstractor(64, 16, 1, 4, 128, dropout=0.0), str(tiny_dir / "depictqa/vision"),
        LatentImageAdapter(16, 64, 16, width=64, nhead=4, dim_feedforward=128, encoder_layers=1, decoder_layers=1),
        image_space=image_space, max_new_tokens=6,
    )


class _Source(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        hq = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=32, mode="bilinear")[0]
        names = ["noise"] if i % 2 else ["noise", "haze"]
        lq = (hq + 0.3 * torch.randn(hq.shape, generator=g)).clamp(0, 1)
        labels = [DegradationLabel(n, {}, "low") for n in names]
        return type("S", (), {"lq": lq, "hq": hq, "labels": labels, "name": str(i)})


class _Fixed(torch.utils.data.Dataset):
    """A fixed list of samples: with batch_size = len, every step sees the same batch."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]

    def collate(self, samples):
        return collate_lqa(samples)


def _records():
    ds = SyntheticIQADataset(_Source(), p_compare=0.5, p_clean=0.0, seed=0)
    return _Fixed([ds[i] for i in range(len(ds))])


def _run(stage, dataset, trainable, tmp_path, steps=6, lr=1e-3):
    config = TrainConfig(seed=0, batch_size=len(dataset), log_every=1, checkpoint_every=10_000, progress=False)
    optimizer = functools.partial(torch.optim.AdamW, lr=lr, weight_decay=0.0)
    result = train(stage, dataset, [Phase("main", steps, tuple(trainable), lr)], optimizer, config, tmp_path,
                   collate_fn=dataset.collate)[0]
    assert len(result.losses) == steps
    return result.losses


def test_iqa_pretrain_lowers_loss(tiny_dir, tmp_path):
    stage = IQAPretrainStage(_lqa(tiny_dir, "pixel"), tokenizer_dir=str(tmp_path / "tok"))
    losses = _run(stage, _records(), ["lqa.abstractor.*", "lqa.vision_proj.*", "lqa.llm.*"], tmp_path)
    assert losses[-1] < 0.7 * losses[0]
    assert (tmp_path / "tok" / "tokenizer.json").is_file()  # the tokenizer is saved with the run
    assert (tmp_path / "model" / "lqa" / "weights.safetensors").is_file()


def test_lqa_align_lowers_loss(tiny_dir, tmp_path):
    stage = LQAAlignStage(build_tiny_autoencoder(), _lqa(tiny_dir))
    losses = _run(stage, _records(), ["lqa.image_adapter.*"], tmp_path, lr=3e-3)
    assert losses[-1] < 0.8 * losses[0]
    assert not stage.lqa.abstractor.training and stage.lqa.image_adapter.training


def test_lqa_finetune_lowers_loss(tiny_dir, tmp_path):
    stage = LQAFinetuneStage(build_tiny_autoencoder(), _lqa(tiny_dir))
    losses = _run(stage, _records(), ["lqa.image_adapter.*", "lqa.llm.*lora_*"], tmp_path, lr=3e-3)
    assert losses[-1] < 0.9 * losses[0]  # LoRA on a random tiny LLM: slower than full training


@pytest.mark.parametrize("target", ["answer", "label"])
def test_cond_align_lowers_loss(target, tiny_dir, tmp_path):
    conditioner = build_sd3_text_conditioner(str(tiny_dir / "sd3_text"), t5_max_length=16)
    torch.manual_seed(0)
    adapter = TextAdapter(128, 32, 64, 48, width=64, nhead=4, dim_feedforward=128)
    stage = CondAlignStage(build_tiny_autoencoder(), _lqa(tiny_dir), conditioner, adapter, target=target)
    losses = _run(stage, _records(), ["text_adapter.*"], tmp_path, lr=3e-3)
    assert losses[-1] < 0.7 * losses[0]
    assert not stage.lqa.training and stage.text_adapter.training


@pytest.mark.parametrize("name", ["iqa_pretrain", "lqa_align", "lqa_finetune", "cond_align"])
def test_stage_configs_compose_and_step(name, tiny_dir, tmp_path):
    overrides = [f"stage={name}", f"tiny_dir={tiny_dir}", f"run_dir={tmp_path}", "data.dataset.source.length=4"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    stage, _ = build_stage(cfg)
    dataset = instantiate(cfg.data.dataset, _convert_="all")
    out = stage(dataset.collate([dataset[i] for i in range(2)]))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_p_better_flips_when_a_and_b_swap(tiny_dir):
    """Train briefly on one clean/noisy pair shown in both orders; then the preference follows the image."""
    torch.manual_seed(0)
    lqa = build_depictqa(str(tiny_dir / "depictqa/llm"), Abstractor(64, 16, 1, 4, 128, dropout=0.0),
                         str(tiny_dir / "depictqa/vision"), image_space="pixel", lora_r=None)
    g = torch.Generator().manual_seed(0)
    clean = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=64, mode="bilinear")
    noisy = (clean + 0.5 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    question = COMPARE_QUESTION + SINGLE_Q_TAIL
    batch = collate_lqa([
        LQASample(build_layout(COMPARE_TASK, [Turn("human", question), Turn("gpt", "Image A")]),
                  torch.cat([clean, noisy]), 1.0, "ab"),
        LQASample(build_layout(COMPARE_TASK, [Turn("human", question), Turn("gpt", "Image B")]),
                  torch.cat([noisy, clean]), 0.0, "ba"),
    ])
    stage = IQAPretrainStage(lqa)
    params = [p for n, p in stage.named_parameters() if not n.startswith("lqa.vision_encoder.")]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    for _ in range(250):
        loss = stage(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:
            break
    lqa.eval()
    with torch.no_grad():
        ab, ba = lqa.p_better(clean, noisy).p_better, lqa.p_better(noisy, clean).p_better
    assert 0 <= float(ba) < 0.5 < float(ab) <= 1
