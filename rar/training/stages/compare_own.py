"""Stage ``compare_own`` (ours, not in the paper): the stop rule's comparator trained on the
restorer's own rounds.

The LQA learns comparison in ``lqa_finetune`` from synthetic pairs (a degraded crop against its
clean or a lighter version). The restorer's outputs carry what those pairs never show
(smoothing, colour shifts), and on them the tiny comparator is little better than a coin
(``docs/experiments.md``). This stage shows it what the restorer produces. One step:

::

    z_0 = E(lq)                                   # the batch's degraded training crops
    z_r = round(z_{r-1})          r = 1 .. R      # assess -> condition -> UIR, as inference, no grad
    s_r = metric(D(z_r), hq),  s_0 = metric(lq, hq)   # input_floor: a rejected first round returns lq
    buffer += (z_{r-1}, z_r, d_r = s_r - s_{r-1})           # the round helped when d_r > 0
    loss = sum |d| BCE(logit of p_better(a, b), a better) / sum |d|   on a draw from the buffer, random order

Each pair weighs what its decision is worth: accepting a round that lowers the metric by 0.05
costs fifty times more than one that lowers it by 0.001, and near-ties (labels a coin could
flip) hardly count. The mean over many images of what the rule keeps is what the loop is judged by.

Only the LQA's comparison adapter trains (``lqa.compare_adapter=true``: a second LoRA adapter,
:data:`rar.lqa.model.COMPARE_ADAPTER`, which :meth:`DepictQA.p_better` uses); it starts as a copy
of the trained default adapter. Identification, whose hidden states condition the UIR, keeps the
default adapter, so the answers the restorer was trained on do not move.

The buffer (``buffer_size`` pairs, oldest dropped first) is not checkpointed: a resumed run
refills it from its next batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rar.core.modes import train_mode
from rar.eval.metrics import MetricSuite
from rar.lqa.assess import assess_and_adapt
from rar.lqa.model import COMPARE_ADAPTER, DEFAULT_ADAPTER, DepictQA
from rar.lqa.text_adapter import TextAdapter
from rar.training.stage import Stage, StepOutput, same_size_pair
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel
from rar.uir.round import restore_round


def copy_lora_adapter(llm: torch.nn.Module, source: str, target: str) -> int:
    """Copy every LoRA tensor of adapter ``source`` onto adapter ``target`` in place; returns the count."""
    state = llm.state_dict()
    copied = 0
    with torch.no_grad():
        for key, value in state.items():
            if ".lora_" in key and f".{source}." in key:
                state[key.replace(f".{source}.", f".{target}.")].copy_(value)
                copied += 1
    if not copied:
        raise ValueError(f"the LLM has no LoRA tensors of adapter {source!r}")
    return copied


def adapter_untrained(llm: torch.nn.Module, name: str) -> bool:
    """True when every ``lora_B`` of adapter ``name`` is zero (peft's initialisation: no change yet)."""
    tensors = [v for k, v in llm.state_dict().items() if ".lora_B." in k and f".{name}." in k]
    if not tensors:
        raise ValueError(f"the LLM has no LoRA adapter {name!r}")
    return all(not bool(t.any()) for t in tensors)


class CompareOwnStage(Stage):
    """Children: ``autoencoder``, ``lqa``, ``text_adapter``, ``uir`` (only the comparison adapter trains).

    Args:
        autoencoder: frozen image ↔ latent autoencoder.
        lqa: DepictQA built with ``compare_adapter=True``.
        text_adapter: the LQA's answer → the UIR's condition (frozen).
        uir: the trained restorer (frozen).
        rounds: rounds run on each crop per step (R).
        steps_per_round: Euler steps of a round (the loop's ``steps_per_round``).
        metric: what decides whether a round helped (``ssim`` | ``psnr``, :mod:`rar.eval.metrics`).
        buffer_size: pairs kept (the newest).
        pairs_per_step: pairs drawn from the buffer for each loss.
    """

    def __init__(self, autoencoder: LatentAutoencoder, lqa: DepictQA, text_adapter: TextAdapter, uir: UIRModel,
                 rounds: int = 3, steps_per_round: int = 4, metric: str = "ssim", buffer_size: int = 2048,
                 pairs_per_step: int = 32) -> None:
        super().__init__()
        if lqa.comparison_adapter is None:
            raise ValueError("compare_own trains the LQA's comparison adapter: build the lqa with "
                             "compare_adapter=true (configs/stage/compare_own.yaml sets it)")
        if uir.concat_lq:
            raise ValueError("compare_own runs the noise-free restorer's rounds; this UIR starts from noise (concat_lq)")
        for name, value in (("rounds", rounds), ("steps_per_round", steps_per_round), ("buffer_size", buffer_size),
                            ("pairs_per_step", pairs_per_step)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.autoencoder, self.lqa, self.text_adapter, self.uir = autoencoder, lqa, text_adapter, uir
        self.rounds, self.steps_per_round = rounds, steps_per_round
        self.metric = metric
        self.suite = MetricSuite([metric])
        self.buffer_size, self.pairs_per_step = buffer_size, pairs_per_step
        self.buffer: list[tuple[torch.Tensor, torch.Tensor, float]] = []
        self.train()

    def _score(self, images: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.suite.score(x, ref, "crop")[self.metric] for x, ref in zip(images, hq, strict=True)])

    @torch.no_grad()
    def own_pairs(self, lq: torch.Tensor, hq: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """``(z_{r-1}, z_r, s_r - s_{r-1})`` for every crop and round, computed as inference computes them."""
        size = tuple(hq.shape[-2:])
        z = self.autoencoder.encode(lq)
        score = self._score(lq.clamp(0, 1).cpu(), hq.cpu())
        pairs = []
        with train_mode(self.uir, False):
            for _ in range(self.rounds):
                x = z if self.lqa.image_space == "latent" else self.autoencoder.decode(z, size=size).clamp(0, 1)
                cond, _ = assess_and_adapt(self.lqa, self.text_adapter, x)
                z_new = restore_round(self.uir, z, cond, self.steps_per_round)
                new_score = self._score(self.autoencoder.decode(z_new, size=size).clamp(0, 1).cpu(), hq.cpu())
                pairs += [(a, b, float(d)) for a, b, d in zip(z.cpu(), z_new.cpu(), new_score - score, strict=True)]
                z, score = z_new, new_score
        return pairs

    def forward(self, batch) -> StepOutput:
        lq, hq = same_size_pair(batch, "compare_own", next(self.uir.parameters()).device)
        if adapter_untrained(self.lqa.llm, COMPARE_ADAPTER):  # a fresh run (a resumed one has trained it)
            copy_lora_adapter(self.lqa.llm, DEFAULT_ADAPTER, COMPARE_ADAPTER)
        self.buffer = (self.buffer + self.own_pairs(lq, hq))[-self.buffer_size:]
        pick = torch.randperm(len(self.buffer))[: self.pairs_per_step].tolist()
        old = torch.stack([self.buffer[i][0] for i in pick]).to(lq.device)
        new = torch.stack([self.buffer[i][1] for i in pick]).to(lq.device)
        gain = torch.tensor([self.buffer[i][2] for i in pick], dtype=torch.float32, device=lq.device)
        helped = (gain > 0).float()
        new_first = torch.rand(len(pick), device=lq.device) < 0.5  # both orders, as in the records
        a = torch.where(new_first[:, None, None, None], new, old)
        b = torch.where(new_first[:, None, None, None], old, new)
        a_better = torch.where(new_first, helped, 1.0 - helped)
        if self.lqa.image_space == "pixel":
            a, b = (self.autoencoder.decode(v).clamp(0, 1) for v in (a, b))
        logit = self.lqa.p_better(a, b).logit
        weight = gain.abs() / gain.abs().sum().clamp_min(1e-12)
        loss = (weight * F.binary_cross_entropy_with_logits(logit, a_better, reduction="none")).sum()
        accuracy = (weight * ((logit.detach() > 0).float() == a_better).float()).sum()  # weighted as the loss
        return StepOutput(loss, {"accuracy": float(accuracy), "helped": float(helped.mean()),
                                 "buffer": float(len(self.buffer))})
