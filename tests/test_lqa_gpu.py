"""Real-size LQA on a GPU (random weights): Vicuna-7B + CLIP ViT-L/14 in bf16, the abstractor,
the SD3.5 latent adapter and text adapter. Checks that the real shapes and dtypes run through
training, ``assess``, ``p_better`` and the pixel path, and prints their timings.

    pytest -m gpu tests/test_lqa_gpu.py -s
"""

from __future__ import annotations

import time

import pytest
import torch

from rar.lqa.abstractor import Abstractor
from rar.lqa.architectures import clip_vit_l14_config, vicuna_7b_v15_config
from rar.lqa.factory import assemble_depictqa
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.prompts import COMPARE_QUESTION, COMPARE_TASK, SINGLE_Q_TAIL, Turn, build_layout
from rar.lqa.text_adapter import TextAdapter
from rar.lqa.tiny import template_corpus, train_word_tokenizer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _timed(fn, repeat: int = 3):
    fn()  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    torch.cuda.synchronize()
    return out, (time.perf_counter() - start) / repeat


def test_real_size_lqa_runs_in_bf16_on_gpu():
    from transformers import CLIPVisionModel, LlamaForCausalLM

    torch.manual_seed(0)
    device = torch.device("cuda")
    tokenizer = train_word_tokenizer(template_corpus(["noise", "haze"]))  # ids fit Vicuna's 32000 vocabulary
    with device:
        torch.set_default_dtype(torch.bfloat16)
        try:
            llm, clip = LlamaForCausalLM(vicuna_7b_v15_config()), CLIPVisionModel(clip_vit_l14_config())
        finally:
            torch.set_default_dtype(torch.float32)
        lqa = assemble_depictqa(
            llm, tokenizer, Abstractor(1024, 64, 4, 8, 2048, 0.1), clip=clip,
            image_adapter=LatentImageAdapter(16, 1024, 64, width=1024, patch_size=2, encoder_layers=2,
                                             decoder_layers=4, nhead=16, dim_feedforward=4096),
            image_space="latent", max_new_tokens=24,
        )
        text_adapter = TextAdapter(4096, 333, 4096, 2048, width=1024, nhead=16, dim_feedforward=4096)
    batch = 8
    z = torch.randn(batch, 16, 64, 64, device=device)  # SD3.5 latents of 512 px images
    layout = build_layout(COMPARE_TASK, [Turn("human", COMPARE_QUESTION + SINGLE_Q_TAIL), Turn("gpt", "Image A")])

    trainable = [p for n, p in lqa.named_parameters() if n.startswith("image_adapter.") or "lora_" in n]
    for p in lqa.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)

    def train_step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = lqa([layout] * batch, torch.cat([z, z.flip(0)]))
        out.loss.backward()
        return out.loss.detach()

    lqa.train()
    loss, t_train = _timed(train_step)
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in trainable)
    lqa.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        assessment, t_assess = _timed(lambda: lqa.assess(z))
        comparison, t_compare = _timed(lambda: lqa.p_better(z, z.flip(0)))
        tokens, t_pixel = _timed(lambda: lqa.pixel_tokens(torch.rand(batch, 3, 512, 512, device=device)))
        cond, t_text = _timed(lambda: text_adapter(assessment.hidden, assessment.mask))
    assert assessment.hidden.shape[0] == batch and assessment.hidden.shape[2] == 4096
    assert ((comparison.p_better >= 0) & (comparison.p_better <= 1)).all()
    assert tokens.shape == (batch, 64, 1024)
    assert cond.prompt_embeds.shape == (batch, 333, 4096) and cond.pooled.shape == (batch, 2048)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"\n[real-size LQA, batch {batch}, {torch.cuda.get_device_name()}] train step (adapter+LoRA) "
          f"{t_train:.3f}s | assess ({assessment.hidden.shape[1]} tokens) {t_assess:.3f}s | p_better {t_compare:.3f}s"
          f" | pixel path 512px {t_pixel:.3f}s | text adapter {t_text:.4f}s | peak {peak:.1f} GiB")
