"""Stage ``joint``: LQA, both adapters and the UIR trained together with iterative assessment.

Paper Eq. 6. ``[0, 1]`` is split into ``K`` equal segments (``K = 4``). The latent at the start of
segment ``k`` is the model's *own* state there: ``z_0 = z_lq`` and ``z_{j+1}`` is ``z_j``
integrated by Euler over ``[j/K, (j+1)/K]`` with the condition ``c_j`` of ``z_j`` — exactly what
inference does when it re-assesses every ``n/K`` steps. Segment ``k``'s condition is
``c_k = TextAdapter(LQA(z_k))``, and the flow-matching loss is taken at ``t = (k + u) / K`` on the
straight path ``x_t = (1 - t) z_lq + t z_hq`` (target ``z_hq - z_lq``) with condition ``c_k``;
``u`` follows ``timestep_sampling`` (``uniform``: ``t`` uniform inside the segment).

Choices (all visible in ``configs/stage/joint.yaml``):

* **Segments per step.** ``segment_sampling="one"`` draws one segment per example per step
  (an unbiased, ``K``-times cheaper estimate of Eq. 6's mean over segments); ``"all"`` takes
  every segment of every example (the batch grows ``K``-fold in the gradient pass).
* **Rollout without gradients** (``rollout_grad=False``, default): the ``z_k`` are computed under
  ``no_grad`` and used as data. The gradient still reaches the LQA's LoRA, the image adapter,
  the text adapter and the UIR through the condition path ``c_k`` and the velocity at ``x_t``.
  ``rollout_grad=True`` back-propagates through the whole rollout (its UIR steps and
  assessments too), at roughly ``K`` times the activation memory.
* **Assessment with gradients, in two passes.** :meth:`DepictQA.assess` decodes greedily (the
  argmax has no gradient); it runs under ``no_grad`` with the LQA in eval mode, so every latent
  is decoded exactly once per step (the rollout's answers are reused for the gradient pass).
  The hidden states that condition the UIR then come from one *teacher-forced* forward of the
  LLM over prompt + decoded answer (:func:`answer_hidden`) with the graph kept: the same values
  ``assess`` returns (up to float error) at the cost of one parallel forward instead of a
  graph through ``T`` cached decoding steps. That pass runs in eval mode too unless
  ``lqa_dropout=True`` (then LoRA dropout acts, as in DepictQA's own training), so by default the
  training condition equals the one inference computes.
* **Non-iterative variant** (paper Table 5): ``iterative=False`` is ``K = 1``: one assessment of
  ``z_lq``, ``t`` from ``timestep_sampling`` over all of ``[0, 1]``.
* **Noisy ablation** (``path=NoisyConditionalPath``, UIR with ``concat_lq=True``): the trajectory
  starts at Gaussian noise ``eps`` instead of ``z_lq`` (``z_0 = eps``), ``z_lq`` is concatenated at
  every UIR call, and the loss is taken on ``x_t = (1 - t) eps + t z_hq`` (target ``z_hq - eps``)
  with the same ``eps`` the rollout started from; the LQA assesses the (noisy) ``z_k`` as they are.

The LQA always reads latents (its image adapter), never decoded pixels.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

import torch
from torchvision.utils import make_grid

from rar.conditioning.condition import Condition
from rar.core.modes import train_mode
from rar.lqa.assess import assess_and_adapt
from rar.lqa.model import Assessment, DepictQA
from rar.lqa.prompts import IDENTIFY_TASK, query_layout
from rar.lqa.text_adapter import TextAdapter
from rar.training.stage import (
    Stage,
    StepOutput,
    first_batch,
    same_size_pair,
)
from rar.training.stages.uir import psnr
from rar.uir import flow
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel
from rar.uir.noise import image_seeds, start_noise
from rar.uir.sampler import integrate
from rar.utils.image_io import save_image

SEGMENT_SAMPLINGS = ("one", "all")


@dataclass
class Rollout:
    """The model's own trajectory from ``z_lq`` through the segment boundaries ``t_j = j / K``.

    Row ``b`` is valid up to its depth ``d_b`` (the deepest boundary it was asked for); rows
    beyond it repeat their last valid entry (latents) or are padding (answers).

    Attributes:
        latents: ``[J + 1, B, C, h, w]``; ``latents[j]`` is ``z_j`` (``latents[0] = z_lq``).
        tokens: ``[J', B, T]`` long; greedy identification answer of ``z_j`` (``pad`` elsewhere).
        mask: ``[J', B, T]`` bool; True on real answer tokens.
        texts: ``J'`` lists of ``B`` decoded answers (``""`` where ``z_j`` was not assessed).
    """

    latents: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    texts: list[list[str]]


def answer_hidden(lqa: DepictQA, latents: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Teacher-forced last-layer states ``[B, T, D_llm]`` of ``tokens [B, T]`` answering the
    identification prompt of ``latents [B, C, h, w]``.

    Position ``L + i`` (``L`` = prompt length) holds answer token ``i`` as input, the convention of
    :func:`rar.lqa.generation.greedy_decode`, so for the tokens ``assess`` decoded this equals
    ``assess(latents).hidden`` on the real tokens. Padding after ``eos`` sits at the end of each
    row, where a causal model cannot let it change the real tokens. Runs under the caller's grad
    mode (with gradients: through the LLM and its LoRA, the projector and the image adapter).
    """
    if tokens.ndim != 2 or tokens.shape[0] != latents.shape[0]:
        raise ValueError(f"expected tokens [B={latents.shape[0]}, T], got {tuple(tokens.shape)}")
    layout = query_layout(IDENTIFY_TASK, lqa.identify_question)
    prompt = lqa.prompt_embeds(layout, [latents], "latent")
    answer = lqa.base_llm.get_input_embeddings()(tokens).to(prompt.dtype)
    hidden = lqa.base_llm.model(inputs_embeds=torch.cat([prompt, answer], dim=1)).last_hidden_state
    return hidden[:, prompt.shape[1]:]


class JointStage(Stage):
    """The ``joint`` stage. Children: ``autoencoder``, ``lqa``, ``text_adapter``, ``uir``.

    Args:
        autoencoder: frozen image ↔ latent autoencoder.
        lqa: DepictQA with an image adapter (its latent path is what this stage trains).
        text_adapter: LQA hidden states → :class:`Condition`.
        uir: velocity model; ``concat_lq`` must match ``path``.
        path: :class:`rar.uir.flow.NoiseFreePath` (default, RAR) or ``NoisyConditionalPath`` (ablation).
        iterative: ``False`` gives the non-iterative variant (``K = 1``, condition of ``z_lq``).
        segments: ``K``, the assessments along ``[0, 1]`` (ignored when not iterative).
        segment_sampling: ``"one"`` segment per example per step, or ``"all"`` of them.
        rollout_steps: Euler steps per segment when rolling out to ``z_k``.
        rollout_grad: back-propagate through the rollout (default: ``z_k`` are data).
        lqa_dropout: run the gradient pass of the LQA in train mode (LoRA dropout on).
        timestep_sampling, logit_mean, logit_std, mode_scale: density of ``u`` inside a segment
            (:func:`rar.uir.flow.sample_timesteps`; ``t = (k + u) / K``).
        loss_weighting: ``none`` | ``sigma_sqrt`` | ``cosmap`` at ``t`` (:func:`rar.uir.flow.loss_weighting`).
        val_dataset, val_samples: pairs restored by :meth:`validate` (first ``val_samples`` items).
        val_steps: Euler steps of a validation restoration (a multiple of ``K``; the LQA
            re-assesses at every segment boundary).
    """

    def __init__(
        self,
        autoencoder: LatentAutoencoder,
        lqa: DepictQA,
        text_adapter: TextAdapter,
        uir: UIRModel,
        path: flow.FlowPath | None = None,
        iterative: bool = True,
        segments: int = 4,
        segment_sampling: str = "one",
        rollout_steps: int = 1,
        rollout_grad: bool = False,
        lqa_dropout: bool = False,
        timestep_sampling: str = "uniform",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        mode_scale: float = 1.29,
        loss_weighting: str = "none",
        val_dataset: torch.utils.data.Dataset | None = None,
        val_samples: int = 4,
        val_steps: int = 4,
    ) -> None:
        super().__init__()
        if lqa.image_space != "latent" or lqa.image_adapter is None:
            raise ValueError(
                f"the joint stage trains the LQA's latent path: build the lqa with an image_adapter and "
                f"image_space='latent' (got image_space={lqa.image_space!r})"
            )
        if lqa.image_adapter.latent_channels != autoencoder.latent_channels:
            raise ValueError(f"the LQA's image adapter reads {lqa.image_adapter.latent_channels}-channel latents "
                             f"but the autoencoder makes {autoencoder.latent_channels}")
        if uir.latent_channels != autoencoder.latent_channels:
            raise ValueError(f"the UIR works on {uir.latent_channels}-channel latents but the autoencoder makes "
                             f"{autoencoder.latent_channels}")
        if getattr(uir, "schedule", None) is not None or getattr(path, "schedule", None) is not None:
            raise ValueError("the joint stage trains flow restorers (noise-free or noisy flow); a diffusion UIR "
                             "(SD1.5) is trained by the uir stage")
        self.path = path if path is not None else flow.NoiseFreePath()
        if self.path.concat_lq != uir.concat_lq:
            raise ValueError(f"{type(self.path).__name__} needs a UIR built with concat_lq={self.path.concat_lq}, "
                             f"got concat_lq={uir.concat_lq}")
        if text_adapter.llm_dim != lqa.hidden_size:
            raise ValueError(f"text_adapter.llm_dim={text_adapter.llm_dim} != the LQA's hidden size {lqa.hidden_size}")
        if segments < 1 or rollout_steps < 1:
            raise ValueError(f"segments and rollout_steps must be >= 1, got {segments} and {rollout_steps}")
        if segment_sampling not in SEGMENT_SAMPLINGS:
            raise ValueError(f"segment_sampling must be one of {SEGMENT_SAMPLINGS}, got {segment_sampling!r}")
        if timestep_sampling not in flow.TIMESTEP_SCHEMES:
            raise ValueError(f"timestep_sampling must be one of {flow.TIMESTEP_SCHEMES}, got {timestep_sampling!r}")
        if loss_weighting not in flow.LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {flow.LOSS_WEIGHTINGS}, got {loss_weighting!r}")
        self.num_segments = segments if iterative else 1
        if val_steps % self.num_segments:
            raise ValueError(f"val_steps={val_steps} must be a multiple of the {self.num_segments} segments")
        self.autoencoder = autoencoder
        self.lqa = lqa
        self.text_adapter = text_adapter
        self.uir = uir
        self.segment_sampling = segment_sampling
        self.rollout_steps, self.rollout_grad, self.lqa_dropout = rollout_steps, rollout_grad, lqa_dropout
        self.timestep_kwargs = {"scheme": timestep_sampling, "logit_mean": logit_mean, "logit_std": logit_std,
                                "mode_scale": mode_scale}
        self.loss_weighting = loss_weighting
        self.val_dataset, self.val_samples, self.val_steps = val_dataset, val_samples, val_steps
        self._val_batch = None

    # ----------------------------------------------------------------- pieces
    def _pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return same_size_pair(batch, "joint", next(self.uir.parameters()).device)

    @torch.no_grad()
    def assess(self, latents: torch.Tensor) -> tuple[Condition, Assessment]:
        """Assess → adapt without gradients (:func:`rar.lqa.assess.assess_and_adapt`, the LQA in
        eval mode: deterministic answers): the condition of ``latents`` and the assessment."""
        return assess_and_adapt(self.lqa, self.text_adapter, latents, space="latent")

    def condition(self, latents: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> Condition:
        """``TextAdapter(LQA(latents))`` with gradients, for the answer ``tokens``/``mask`` ``[N, T]``
        that :meth:`assess` decoded (teacher-forced, :func:`answer_hidden`)."""
        keep = int(mask.any(0).nonzero().max()) + 1  # drop all-padding columns
        tokens, mask = tokens[:, :keep], mask[:, :keep]
        with train_mode(self.lqa, self.lqa_dropout and self.training):
            hidden = answer_hidden(self.lqa, latents, tokens)
        return self.text_adapter(hidden, mask)

    def rollout(self, start: torch.Tensor, depth: torch.Tensor, steps: int, assess_last: bool = True,
                z_lq: torch.Tensor | None = None) -> Rollout:
        """Integrate each row ``b`` of ``start [B, C, h, w]`` (``z_lq``, or noise for the noisy path,
        whose ``z_lq`` is then concatenated at every step) through its first ``depth[b]`` segments
        (``steps`` Euler steps each), re-assessing at every boundary; with ``assess_last`` the
        boundary ``depth[b]`` itself is assessed too. Gradients only with ``rollout_grad``."""
        K, batch = self.num_segments, start.shape[0]
        grad = self.rollout_grad and torch.is_grad_enabled()
        tok = self.lqa.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        x, latents, answers = start, [start], []
        for j in range(int(depth.max()) + 1):
            stepping = depth > j
            assessed = (depth >= j) if assess_last else stepping
            if not bool(assessed.any()):
                break
            rows = assessed.nonzero().squeeze(1)
            assessed_cond, a = self.assess(x[rows])
            answers.append((rows, a))
            if not bool(stepping.any()):
                break
            sel = stepping[rows]
            moving = rows[sel]
            with torch.set_grad_enabled(grad):
                if grad:
                    cond = self.condition(x[moving], a.tokens[sel], a.mask[sel])
                else:
                    cond = assessed_cond.index(sel)
                end = integrate(self.uir, x[moving], cond, steps=steps, t0=j / K, t1=(j + 1) / K,
                                z_lq=None if z_lq is None else z_lq[moving]).latent
                x = x.index_copy(0, moving, end)
            latents.append(x)
        width = max((a.tokens.shape[1] for _, a in answers), default=1)
        tokens = torch.full((len(answers), batch, width), pad, dtype=torch.long, device=start.device)
        mask = torch.zeros(tokens.shape, dtype=torch.bool, device=start.device)
        texts = [[""] * batch for _ in answers]
        for j, (rows, a) in enumerate(answers):
            tokens[j, rows, : a.tokens.shape[1]] = a.tokens
            mask[j, rows, : a.mask.shape[1]] = a.mask
            for r, text in zip(rows.tolist(), a.text, strict=True):
                texts[j][r] = text
        return Rollout(torch.stack(latents), tokens, mask, texts)

    def _terms(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, segment)`` of the loss terms: one random segment per example, or all of them."""
        K = self.num_segments
        if self.segment_sampling == "one":
            return torch.arange(batch, device=device), torch.randint(K, (batch,), device=device)
        return torch.arange(batch, device=device).repeat(K), torch.arange(K, device=device).repeat_interleave(batch)

    # ----------------------------------------------------------------- training
    def forward(self, batch) -> StepOutput:
        """One step on a ``RestorationBatch`` (anything with same-size ``lq`` and ``hq`` images)."""
        lq, hq = self._pair(batch)
        with torch.no_grad():
            z_lq, z_hq = self.autoencoder.encode(lq), self.autoencoder.encode(hq)
        K = self.num_segments
        rows, seg = self._terms(z_lq.shape[0], z_lq.device)
        depth = torch.zeros(z_lq.shape[0], dtype=torch.long, device=z_lq.device).scatter_reduce(0, rows, seg, "amax")
        source = self.path.source(z_lq)  # z_lq, or eps ~ N(0, I) for the noisy path
        cat = z_lq if self.path.concat_lq else None
        roll = self.rollout(source, depth, self.rollout_steps, assess_last=True, z_lq=cat)
        z_k = roll.latents[seg, rows]
        cond = self.condition(z_k, roll.tokens[seg, rows], roll.mask[seg, rows])
        u = flow.sample_timesteps(rows.shape[0], device=z_lq.device, **self.timestep_kwargs)
        t = (seg.to(u.dtype) + u) / K
        sample = flow.straight(source[rows], z_hq[rows], t, z_lq=None if cat is None else cat[rows])
        v = self.uir(sample.x_t, t, cond, z_lq=sample.z_lq)
        weight = flow.loss_weighting(self.loss_weighting, t)
        loss = flow.flow_matching_loss(v, sample.target, weight)
        logs = self._logs(v, sample.target, weight, seg, z_k, source[rows], z_hq[rows])
        logs["loss_flow"] = float(loss.detach())
        return StepOutput(loss, logs)

    @torch.no_grad()
    def _logs(self, v, target, weight, seg, z_k, source, z_hq) -> dict[str, float]:
        """Per-segment FM loss and the rollout's drift from the straight path at ``t_k = k / K``."""
        per_row = weight.float() * ((v.float() - target.float()) ** 2).flatten(1).mean(1)
        logs = {f"loss_seg{k}": float(per_row[seg == k].mean())
                for k in range(self.num_segments) if bool((seg == k).any())}
        deep = seg > 0
        if bool(deep.any()):
            tk = (seg[deep].float() / self.num_segments).view(-1, 1, 1, 1)
            ideal = (1 - tk) * source[deep] + tk * z_hq[deep]
            logs["rollout_mse"] = float(((z_k[deep].float() - ideal.float()) ** 2).mean())
        return logs

    # ----------------------------------------------------------------- validation
    @torch.no_grad()
    def restore(self, lq: torch.Tensor) -> tuple[torch.Tensor, Rollout]:
        """Restore ``lq [B, 3, H, W]`` in ``[0, 1]``: ``val_steps`` Euler steps over ``[0, 1]`` with a
        re-assessment at every segment boundary (a noise-start UIR from seeded noise, seed 0). Returns
        the images and the rollout (answers)."""
        z_lq = self.autoencoder.encode(lq)
        depth = torch.full((lq.shape[0],), self.num_segments, dtype=torch.long, device=lq.device)
        start, cat = (start_noise(z_lq, image_seeds(lq, 0), 1), z_lq) if self.path.concat_lq else (z_lq, None)
        roll = self.rollout(start, depth, self.val_steps // self.num_segments, assess_last=False, z_lq=cat)
        return self.autoencoder.decode(roll.latents[-1], size=lq.shape[-2:]), roll

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        """Restore the first ``val_samples`` pairs; write ``restored.png`` (rows: LQ | restored | HQ)
        and ``answers.json`` (the LQA's answer per segment); return mean PSNR of output and input."""
        if self.val_dataset is None:
            return {}
        if self._val_batch is None:
            self._val_batch = first_batch(self.val_dataset, self.val_samples)
        lq, hq = self._pair(self._val_batch)
        restored, roll = self.restore(lq)
        out_dir = pathlib.Path(out_dir)
        grid = make_grid(torch.stack([lq, restored, hq], dim=1).flatten(0, 1), nrow=3, padding=2, pad_value=1.0)
        save_image(grid, out_dir / "restored.png", overwrite=True)
        answers = [[roll.texts[j][b] for j in range(len(roll.texts))] for b in range(lq.shape[0])]
        (out_dir / "answers.json").write_text(json.dumps(answers, indent=1))
        return {"psnr": psnr(restored, hq).mean().item(), "psnr_input": psnr(lq, hq).mean().item()}
