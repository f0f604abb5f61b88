"""RAR inference: one encode, restore → assess → repeat in the latent space, one decode (and one
of the input's latent for ``input_detail``).

The whole method is :meth:`RARPipeline.forward`::

    z = AE.encode(pad(x))                                       # exactly one encode
    for r in 1..max_rounds (active images only):
        c = TextAdapter(LQA.assess(z))                          # assess -> adapt (rar.lqa.assess)
        z_new = integrate UIR from z with c, t: 0 -> 1          # optional re-assessment every k steps
                (noise-start UIR: from seeded noise, z concatenated; rar.uir.round)
        stop="compare": p_better(z_new, over=z) < threshold -> stop, keep z
        z = z_new
    x_hat = crop(AE.decode(z))                                  # exactly one decode of the kept latent
            (input_floor: x itself where no round was kept: nothing to decode)
            (input_detail: + the input's detail the autoencoder drops, x - D(z_lq) with its
             noise shrunk away: one more decode, of z_lq; rar.pipeline.input_detail)

A latent larger than the backbone takes (SD3's ``pos_embed_max_size``) runs each round on
overlapping latent tiles, blended after the round, with one stop decision per image
(:mod:`rar.pipeline.tiling`): any image size is restored.

Usable from Python without Hydra::

    pipe = RARPipeline.from_pretrained("models/tiny", device="cpu", max_rounds=3)
    result = pipe(lq)                  # RestoreResult: images [B,3,H,W], trajectories
    out = pipe.restore(lq)             # rar.core.outputs.MethodOutput (the eval harness's protocol)

With an LQA whose ``image_space`` is ``"pixel"`` (the "Pixel" ablation) each assessment and
comparison decodes the latent first; the one-decode guarantee is for the latent LQA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from rar.conditioning.condition import Condition
from rar.core.timing import StageClock
from rar.lqa.assess import assess_and_adapt
from rar.lqa.model import Assessment, DepictQA
from rar.lqa.text_adapter import TextAdapter, ZeroTextAdapter
from rar.pipeline.base import InferencePipeline
from rar.pipeline.config import LoopConfig
from rar.pipeline.fast_paths import FastPaths
from rar.pipeline.geometry import latent_multiple, max_image_side
from rar.pipeline.input_detail import input_detail
from rar.pipeline.model_folder import (
    parse_dtype,
    read_model_folder,
    realign,
    write_model_folder,
)
from rar.pipeline.prompts import comparison_question, identification_question
from rar.pipeline.results import RestoreResult
from rar.pipeline.rounds import ActiveRounds
from rar.pipeline.tiling import TileGrid, Tiling
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel
from rar.uir.noise import image_seeds
from rar.uir.round import restore_round


class RARPipeline(InferencePipeline):
    """The RAR restorer: autoencoder + UIR + LQA + text adapter + loop settings.

    Args:
        autoencoder: frozen image ↔ latent autoencoder.
        uir: the restorer: the noise-free velocity model (``concat_lq=False``, RAR), or a noise-start
            one (``concat_lq=True``: noisy flow ablation, SD1.5 diffusion) whose rounds start from
            noise seeded by ``config.seed``, the input image and the round, with the round's input
            latent concatenated (:mod:`rar.uir.noise`, :func:`rar.uir.round.restore_round`).
        lqa: the assessor (``assess``, ``p_better``; latent or pixel image space).
        text_adapter: LQA answer hidden states → the UIR's :class:`Condition` (a ``ZeroTextAdapter``
            for a UIR trained with ``condition=none``: the control without the assessor's words).
        config: loop settings (default :class:`LoopConfig`).
    """

    tiles_large_inputs = True

    def __init__(
        self,
        autoencoder: LatentAutoencoder,
        uir: UIRModel,
        lqa: DepictQA,
        text_adapter: TextAdapter | ZeroTextAdapter,
        config: LoopConfig | None = None,
    ) -> None:
        super().__init__()
        llm_dim = getattr(lqa, "hidden_size", None)
        if llm_dim is not None and llm_dim != text_adapter.llm_dim:
            raise ValueError(f"text adapter reads {text_adapter.llm_dim}-d hidden states, the LQA gives {llm_dim}-d")
        self._set_parts(autoencoder, uir, lqa, config)
        self.text_adapter = text_adapter
        realign(self)  # aligned CPU weights: a reloaded folder computes exactly what this pipeline computes
        self.eval()

    def _set_parts(self, autoencoder: LatentAutoencoder, uir: UIRModel, lqa: DepictQA, config: LoopConfig | None) -> None:
        """Check and keep the parts every latent loop has (shared with :class:`rar.baselines.TextLatentPipeline`)."""
        if uir.latent_channels != autoencoder.latent_channels:
            raise ValueError(f"UIR works on {uir.latent_channels}-channel latents, the autoencoder "
                             f"{type(autoencoder).__name__} makes {autoencoder.latent_channels}")
        self.autoencoder = autoencoder
        self.uir = uir
        self.lqa = lqa
        self.config = config or LoopConfig()
        self.tiling = Tiling()

    # ----------------------------------------------------------------- module plumbing
    def with_config(self, **changes) -> RARPipeline:
        """Change loop settings in place (e.g. ``max_rounds=1``); returns ``self``."""
        self.config = self.config.replace(**changes)
        return self

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def forward(self, lq: torch.Tensor, return_latents: bool = False) -> RestoreResult:
        """Restore ``lq [B, 3, H, W]`` in ``[0, 1]`` (any ``H, W``); ``return_latents`` keeps each
        round's output latent ``[C, h, w]`` (CPU) in the trajectories."""
        config, clock = self.config, StageClock(self.device)
        with self.fast.context(self.device):
            x = self.prepare(lq, clock)
            with clock.section("encode"):
                z = self.autoencoder.encode(x)  # the one encode
            rounds = ActiveRounds(z, keep_states=return_latents)
            seeds = image_seeds(lq, config.seed) if self.uir.concat_lq else None  # noise-start UIR only
            tiles = self.tile_grid(*z.shape[-2:])  # one tile (the identity) when the backbone takes z whole
            for round_index in range(1, config.max_rounds + 1):
                if rounds.done:
                    break
                start, z_in = clock.total(), rounds.current()
                x_in = tiles.split(z_in)
                with clock.section("assess"):  # assess -> adapt
                    cond, assessment = self.assess(x_in, round_index, 0, clock)
                with clock.section("restore"):  # integrate the UIR, t: 0 -> 1 (from z_in, or seeded noise + z_in)
                    noise = None if seeds is None else tiles.split(rounds.start_noise(z_in, seeds, round_index))
                    x_out = restore_round(self.uir, x_in, cond, config.steps_per_round, config.method, noise,
                                          self._reassess_hook(round_index, clock), config.assess_every)
                z_out = tiles.merge(x_out)
                p_better = None
                if config.stop == "compare":  # compare: the stop rule keeps z_in where z_out is judged worse
                    with clock.section("compare"):
                        question = comparison_question(config.prompt_pool, config.seed, round_index)
                        p_better = tiles.per_image(self.lqa.p_better(
                            self._lqa_view(tiles.split(z_out), clock), self._lqa_view(x_in, clock),
                            question=question).p_better)
                rounds.record(z_out, tiles.texts(assessment.text), p_better, config.threshold_at(round_index),
                              clock.total() - start)
            with clock.section("decode"):  # the one decode (images that kept a round; input_detail: their z_lq too)
                images, detail = self._output_images(lq, z, rounds)
        return RestoreResult(images, rounds.trajectories, dict(clock.seconds), detail)

    def _output_images(self, lq: torch.Tensor, z_lq: torch.Tensor,
                       rounds: ActiveRounds) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode the kept latents (plus the input's detail with ``config.input_detail``); with
        ``config.input_floor`` an image that kept no round is its input itself (not its
        reconstruction) and is not decoded. Returns the images and the detail added (zero for the
        images not decoded; ``None`` without ``input_detail``)."""
        size = lq.shape[-2:]
        images = lq.to(self.device, torch.float32).clone()
        decoded = rounds.changed().to(self.device) if self.config.input_floor else torch.ones(
            len(images), dtype=torch.bool, device=self.device)
        detail = torch.zeros_like(images) if self.config.input_detail else None
        if decoded.any():
            if detail is not None:
                detail[decoded] = input_detail(images[decoded], self.autoencoder.decode(z_lq[decoded], size=size))
            images[decoded] = self.state_image(rounds.states[decoded], size, None if detail is None else detail[decoded])
        return images, detail

    def tile_grid(self, height: int, width: int) -> TileGrid:
        """The tiles of a ``height x width`` latent under :attr:`tiling` (one when it fits the backbone)."""
        max_side = max_image_side(self.autoencoder, self.uir)
        max_latent = None if max_side is None else max_side // self.autoencoder.stride
        return self.tiling.grid(height, width, max_latent, latent_multiple(self.uir))

    def assess(self, z: torch.Tensor, round_index: int, step: int, clock: StageClock) -> tuple[Condition, Assessment]:
        """Assess → adapt (:func:`rar.lqa.assess.assess_and_adapt`) with the question of the loop's
        prompt pool for this ``round_index`` and integration ``step``."""
        question = identification_question(self.config.prompt_pool, self.config.seed, round_index, step)
        return assess_and_adapt(self.lqa, self.text_adapter, self._lqa_view(z, clock), question=question)

    def _lqa_view(self, z: torch.Tensor, clock: StageClock) -> torch.Tensor:
        """What the LQA reads: the latent, or the decoded image for a pixel-space LQA."""
        if self.lqa.image_space == "latent":
            return z
        with clock.section("decode"):
            return self.autoencoder.decode(z).clamp(0, 1)

    def _reassess_hook(self, round_index: int, clock: StageClock) -> Callable[..., Condition] | None:
        """The sampler hook that refreshes the condition every ``assess_every`` steps (or None)."""
        if self.config.assess_every is None:
            return None

        def hook(x_t: torch.Tensor, t: float, step: int) -> Condition:
            with clock.section("assess"):
                return self.assess(x_t, round_index, step, clock)[0]
        return hook

    @torch.no_grad()
    def state_image(self, states: torch.Tensor, size: tuple[int, int], detail: torch.Tensor | None = None) -> torch.Tensor:
        """Latents ``[B, C, h, w]`` as the loop outputs them: decoded to ``size``, plus ``detail``
        (one image's slice of ``RestoreResult.detail``) when given, in ``[0, 1]``, on the pipeline's
        device. A round's kept state (``RoundRecord.latent [C, h, w]``, for figures and audits; this
        decode is outside the loop) gives ``[3, H, W]`` on the CPU."""
        if states.ndim == 3:
            return self.state_image(states[None], size, None if detail is None else detail[None])[0].cpu()
        images = self.autoencoder.decode(states.to(self.device), size=size)
        return (images if detail is None else images + detail.to(self.device)).clamp(0, 1)

    # ----------------------------------------------------------------- model folder
    def save_pretrained(self, path: str | Path, lora: str = "adapter", conditioner: nn.Module | None = None,
                        overwrite: bool = False, source: dict | None = None) -> Path:
        """Write the model folder (:mod:`rar.pipeline.model_folder`).

        Args:
            path: output folder.
            lora: ``"adapter"`` (peft adapter beside the LLaMA weights; bit-exact) or ``"merged"``.
            conditioner: SD3.5 text encoders to include for the naive pipeline (optional).
            overwrite: replace an existing folder.
            source: provenance recorded in ``model_index.json`` (e.g. ``{"run_dir": ...}``).
        """
        components = {"autoencoder": self.autoencoder, "uir": self.uir, "lqa": self.lqa,
                      "text_adapter": self.text_adapter, "conditioner": conditioner}
        return write_model_folder(path, components, self.config, overwrite=overwrite, source=source, lora=lora)

    @classmethod
    def from_modules(cls, modules: Mapping[str, nn.Module], config: LoopConfig | None = None) -> RARPipeline:
        """Pick ``autoencoder``, ``uir``, ``lqa`` and ``text_adapter`` out of a training stage's
        children (``dict(stage.named_children())``); a missing one is an error naming what is there."""
        missing = [name for name in ("autoencoder", "uir", "lqa", "text_adapter") if name not in modules]
        if missing:
            raise ValueError(f"a RAR pipeline needs modules autoencoder, uir, lqa, text_adapter; missing {missing} "
                             f"among {sorted(modules)} (export a joint run or a uir run with condition=lqa)")
        return cls(modules["autoencoder"], modules["uir"], modules["lqa"], modules["text_adapter"], config)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
        fast: FastPaths | Mapping | None = None, **loop_settings,
    ) -> RARPipeline:
        """Load a model folder; ``dtype`` casts every component (default: as saved), ``device``
        moves them, ``fast`` sets the fast paths (:class:`FastPaths`), ``loop_settings`` override
        ``rar_config.json`` (e.g. ``max_rounds=1``)."""
        folder = read_model_folder(path, parse_dtype(dtype), skip=("conditioner",))
        if "text_adapter" not in folder.components:
            raise ValueError(f"{path} holds no text adapter: its UIR is conditioned on text encoders (condition=text); "
                             "run it with method=naive (pixel LQA) or method=text_latent (latent LQA)")
        parts = {name: m.to(device) for name, m in folder.components.items()} if device is not None else folder.components
        pipe = cls(parts["autoencoder"], parts["uir"], parts["lqa"], parts["text_adapter"],
                   folder.config.replace(**loop_settings))
        return pipe.set_fast_paths(fast)
