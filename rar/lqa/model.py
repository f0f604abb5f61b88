"""DepictQA with a swappable image path: the LQA module and its assessment API.

Module tree (DepictQA's names, so released weights load by name):
``vision_encoder`` (CLIP patch features, frozen; absent when only latents are read),
``abstractor`` (queries over CLIP features), ``image_adapter`` (the latent path, ours),
``vision_proj`` (``Linear(D_vision → D_llm)``), ``llm`` (LLaMA/Vicuna, LoRA via peft).

``image_space`` picks which path :meth:`DepictQA.embed_images` (and so :meth:`assess`,
:meth:`p_better`, :meth:`describe`) reads: ``"pixel"`` takes images ``[B, 3, H, W]`` in
``[0, 1]``, ``"latent"`` takes UIR latents ``[B, C, h, w]`` (the ablation rows "Pixel" and
"Latent"). Callers check ``lqa.image_space`` to know which to pass.

Comparison is read from logits rather than decoded text: after the single-word comparison
prompt, the answers ``"Image A"`` / ``"Image B"`` share the prefix ``"Image"``; we teacher-force
that shared prefix and compare the next-token logits of the first differing tokens (``" A"`` vs
``" B"``; for Vicuna ``"▁A"`` vs ``"▁B"``): ``p_better = sigmoid(logit_A - logit_B)``.

Prefix cache (``prefix_cache=True``, the default): every identification and comparison prompt
starts with the same text (BOS, system text, the piece up to the first image slot). In inference
(module in eval mode, gradients off) its keys/values are computed once per task and reused by
every call and every batch row (:class:`rar.lqa.generation.PrefixKV`); outputs equal the uncached
path up to float round-off. The stored states assume the weights stay frozen while it is in use;
they are dropped on ``train(True)``, on ``.to()``/dtype changes and when an LLM parameter is
modified in place. Training forwards (:meth:`DepictQA.forward`, or anything with gradients) never
read it.

Static decoding (``static_decoder``, a :class:`rar.lqa.static_decode.StaticDecoder`; off when
``None``): in inference the greedy answers of :meth:`assess` and :meth:`describe` run over a
preallocated static KV cache, optionally with a compiled (CUDA-graph) one-token step; same tokens
as the default dynamic-cache loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

from rar.lqa.abstractor import Abstractor
from rar.lqa.generation import Decoded, LLMPrompt, PrefixKV, greedy_decode
from rar.lqa.image_adapter import LatentImageAdapter
from rar.lqa.pixel_encoder import PixelEncoder
from rar.lqa.prompts import (
    COMPARE_QUESTION,
    COMPARE_TASK,
    IDENTIFY_QUESTION,
    IDENTIFY_TASK,
    SINGLE_Q_TAIL,
    PromptLayout,
    answer_text,
    query_layout,
)
from rar.lqa.static_decode import StaticDecoder

ImageSpace = Literal["pixel", "latent"]


@dataclass
class Tokenized:
    """A tokenised batch of layouts, right-padded, with image slots marked.

    Attributes:
        input_ids: ``[B, T]`` long; BOS first; image slots and padding hold ``pad_id``.
        labels: ``[B, T]`` long; the answer ids, ``-100`` elsewhere (prompt, images, padding).
        attention_mask: ``[B, T]`` long; 1 on real tokens and image slots.
        image_mask: ``[B, T]`` bool; True on the ``num_queries`` slots of each image.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    image_mask: torch.Tensor

    def to(self, device) -> Tokenized:
        return Tokenized(*(t.to(device) for t in (self.input_ids, self.labels, self.attention_mask, self.image_mask)))


@dataclass
class LMOutput:
    """Next-token loss of a batch. ``loss``: scalar CE over answer tokens; ``accuracy``: scalar in [0, 1]."""

    loss: torch.Tensor
    accuracy: torch.Tensor


@dataclass
class Assessment:
    """The LQA's identification of a batch.

    Attributes:
        hidden: ``[B, T, D_llm]`` last-layer states of the answer tokens (terminator included).
        mask: ``[B, T]`` bool, True on real answer tokens.
        text: decoded answers, e.g. ``"Noise, haze"`` (for logs; never re-encoded).
        tokens: ``[B, T]`` long answer ids.
    """

    hidden: torch.Tensor
    mask: torch.Tensor
    text: list[str]
    tokens: torch.Tensor


@dataclass
class Comparison:
    """``p_better [B]`` in ``[0, 1]``: probability that Image A (the first input) is better;
    ``logit [B]``: ``logit_A - logit_B``."""

    p_better: torch.Tensor
    logit: torch.Tensor


class DepictQA(nn.Module):
    """The DepictQA-style assessor with a pixel and a latent image path.

    Args:
        llm: LLaMA causal LM, optionally wrapped by peft (LoRA).
        tokenizer: its tokenizer; ``"</s>"`` in text must map to ``eos``.
        abstractor: pixel-path query abstractor (also defines ``num_queries`` and ``D_vision``).
        vision_proj: ``Linear(D_vision → D_llm)``.
        vision_encoder: CLIP patch features; ``None`` if the pixel path is not needed.
        image_adapter: latent path; ``None`` for a pixel-only model.
        image_space: which path the assessment API reads.
        max_new_tokens: decoding budget of :meth:`assess` and :meth:`describe`.
        prefix_cache: reuse the keys/values of the shared prompt prefix in inference (see module doc).
    """

    def __init__(
        self,
        llm: nn.Module,
        tokenizer: PreTrainedTokenizerBase | None,
        abstractor: Abstractor,
        vision_proj: nn.Linear,
        vision_encoder: PixelEncoder | None = None,
        image_adapter: LatentImageAdapter | None = None,
        image_space: ImageSpace = "latent",
        max_new_tokens: int = 24,
        prefix_cache: bool = True,
    ) -> None:
        super().__init__()
        if image_space not in ("pixel", "latent"):
            raise ValueError(f"image_space must be 'pixel' or 'latent', got {image_space!r}")
        if image_space == "pixel" and vision_encoder is None:
            raise ValueError("image_space='pixel' needs a vision_encoder (CLIP)")
        if image_space == "latent" and image_adapter is None:
            raise ValueError("image_space='latent' needs an image_adapter")
        if image_adapter is not None and image_adapter.num_queries != abstractor.num_queries:
            raise ValueError(
                f"image_adapter emits {image_adapter.num_queries} tokens but the abstractor {abstractor.num_queries}"
            )
        self.vision_encoder = vision_encoder
        self.abstractor = abstractor
        self.image_adapter = image_adapter
        self.vision_proj = vision_proj
        self.llm = llm
        self.tokenizer = tokenizer
        self.image_space: ImageSpace = image_space
        self.max_new_tokens = max_new_tokens
        self.prefix_cache = prefix_cache
        self.prefix_kv = PrefixKV()
        self.static_decoder: StaticDecoder | None = None  # static-cache greedy decoding in inference (see module doc)
        self.identify_question = IDENTIFY_QUESTION + SINGLE_Q_TAIL
        self.compare_question = COMPARE_QUESTION + SINGLE_Q_TAIL
        self.describe_question = IDENTIFY_QUESTION

    # ----------------------------------------------------------------- structure
    @property
    def base_llm(self) -> LlamaForCausalLM:
        """The LLaMA model itself (LoRA layers, if any, are inside it)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    @property
    def num_queries(self) -> int:
        return self.abstractor.num_queries

    @property
    def hidden_size(self) -> int:
        return self.base_llm.config.hidden_size

    def train(self, mode: bool = True) -> DepictQA:
        if mode:
            self.prefix_kv.clear()  # training may change the weights the stored prefix states came from
        super().train(mode)
        if self.vision_encoder is not None:
            self.vision_encoder.eval()  # frozen CLIP, as in DepictQA
        return self

    def _apply(self, fn, *args, **kwargs):
        self.prefix_kv.clear()  # .to() / .half() / .cuda(): the stored states are on the old device/dtype
        if self.static_decoder is not None:
            self.static_decoder.clear()
        return super()._apply(fn, *args, **kwargs)

    def _ids(self) -> tuple[int, int, int]:
        tok = self._tokenizer()
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        return tok.bos_token_id, eos, pad

    def _tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer is None:
            raise RuntimeError("this DepictQA was built without a tokenizer; build it with build_depictqa(...)")
        return self.tokenizer

    # ----------------------------------------------------------------- images
    def pixel_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Pixel path before the projector: images ``[B, 3, H, W]`` → ``[B, Q, D_vision]``."""
        if self.vision_encoder is None:
            raise RuntimeError("this LQA has no pixel path (built without vision_pretrained)")
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.vision_encoder.parameters())
        with torch.set_grad_enabled(grad):
            features = self.vision_encoder(images)
        return self.abstractor(features.to(self.abstractor.query_embeds.dtype))

    def latent_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """Latent path before the projector: latents ``[B, C, h, w]`` → ``[B, Q, D_vision]``."""
        if self.image_adapter is None:
            raise RuntimeError("this LQA has no latent path (built without an image_adapter)")
        return self.image_adapter(latents)

    def embed_images(self, x: torch.Tensor, space: ImageSpace | None = None) -> torch.Tensor:
        """Images or latents (per ``space``, default :attr:`image_space`) → ``[B, Q, D_llm]``."""
        space = space or self.image_space
        tokens = self.pixel_tokens(x) if space == "pixel" else self.latent_tokens(x)
        return self.vision_proj(tokens)

    # ----------------------------------------------------------------- text
    def tokenize(self, layouts: Sequence[PromptLayout]) -> Tokenized:
        """Tokenise each text piece separately (as DepictQA does) and lay out image slots."""
        tok = self._tokenizer()
        bos, _, pad = self._ids()
        texts = [t for lay in layouts for t in (*lay.segments, *(p for p, _ in lay.pieces))]
        pieces = iter(tok(texts, add_special_tokens=False)["input_ids"])
        rows = []
        for lay in layouts:
            ids, labels, img = [bos], [-100], [False]
            for _ in lay.segments:
                seg = next(pieces)
                ids += seg + [pad] * self.num_queries
                labels += [-100] * (len(seg) + self.num_queries)
                img += [False] * len(seg) + [True] * self.num_queries
            for _, is_answer in lay.pieces:
                piece = next(pieces)
                ids += piece
                labels += piece if is_answer else [-100] * len(piece)
                img += [False] * len(piece)
            rows.append((ids, labels, img))
        width = max(len(r[0]) for r in rows)
        limit = getattr(self.base_llm.config, "max_position_embeddings", None)
        if limit is not None and width > limit:
            raise ValueError(f"a prompt of {width} tokens exceeds the LLM's {limit} positions")
        out = torch.full((len(rows), width), pad, dtype=torch.long)
        lab = torch.full_like(out, -100)
        att = torch.zeros_like(out)
        img = torch.zeros(out.shape, dtype=torch.bool)
        for b, (row_ids, row_labels, row_images) in enumerate(rows):
            n = len(row_ids)
            out[b, :n], lab[b, :n], att[b, :n] = torch.tensor(row_ids), torch.tensor(row_labels), 1
            img[b, :n] = torch.tensor(row_images)
        return Tokenized(out, lab, att, img)

    def embed_inputs(self, tokens: Tokenized, image_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the images spliced in: ``image_embeds [N_img, Q, D]`` fill the slots
        in order (row-major: sample 0's images in layout order, then sample 1's, ...)."""
        embeds = self.base_llm.get_input_embeddings()(tokens.input_ids)
        slots = int(tokens.image_mask.sum())
        if slots != image_embeds.shape[0] * image_embeds.shape[1]:
            raise ValueError(
                f"the batch has {slots // self.num_queries} image slots but {image_embeds.shape[0]} images were given"
            )
        mask = tokens.image_mask.unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, image_embeds.to(embeds.dtype))

    # ----------------------------------------------------------------- training
    def forward(
        self, layouts: Sequence[PromptLayout], images: torch.Tensor, space: ImageSpace | None = None
    ) -> LMOutput:
        """Next-token CE on the answers of ``layouts``; ``images [N_img, ...]`` fill their slots in order."""
        tokens = self.tokenize(layouts).to(images.device)
        embeds = self.embed_inputs(tokens, self.embed_images(images, space))
        hidden = self.base_llm.model(inputs_embeds=embeds, attention_mask=tokens.attention_mask,
                                     use_cache=False).last_hidden_state
        labels = tokens.labels[:, 1:]
        keep = labels != -100
        if not bool(keep.any()):
            raise ValueError("the batch has no answer tokens to train on (records without a gpt turn?)")
        logits = self.base_llm.lm_head(hidden[:, :-1][keep]).float()
        targets = labels[keep]
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.detach().argmax(-1) == targets).float().mean()
        return LMOutput(loss, accuracy)

    # ----------------------------------------------------------------- assessment API
    def prompt_embeds(
        self, layout: PromptLayout, images: Sequence[torch.Tensor], space: ImageSpace | None = None
    ) -> torch.Tensor:
        """``[B, L, D_llm]`` prompt of one layout for a batch; ``images[k]`` (``[B, ...]``) fills slot ``k``."""
        return self._embed_prompt(layout, images, space)[1]

    def llm_prompt(
        self, layout: PromptLayout, images: Sequence[torch.Tensor], space: ImageSpace | None = None
    ) -> LLMPrompt:
        """The prompt of :meth:`prompt_embeds`, split after the text before the first image slot
        when the prefix cache applies (:attr:`prefix_cache_active`): the prefix comes as a
        batch-expanded KV cache and ``embeds`` holds the rest; otherwise ``embeds`` is the whole prompt."""
        tokens, embeds = self._embed_prompt(layout, images, space)
        if not self.prefix_cache_active:
            return LLMPrompt(embeds)
        n = int(tokens.image_mask[0].nonzero()[0, 0])  # text tokens before the first image slot (CPU)
        ids = tuple(tokens.input_ids[0, :n].tolist())
        past = self.prefix_kv.past(self.base_llm, ids, embeds[:1, :n], embeds.shape[0])
        return LLMPrompt(embeds[:, n:], past)

    @property
    def prefix_cache_active(self) -> bool:
        """Whether a call now reads the prefix cache: switched on, eval mode, gradients off."""
        return self.prefix_cache and not self.training and not self.llm.training and not torch.is_grad_enabled()

    def _embed_prompt(
        self, layout: PromptLayout, images: Sequence[torch.Tensor], space: ImageSpace | None
    ) -> tuple[Tokenized, torch.Tensor]:
        """The layout's tokens (one row, on the CPU) and the batch's prompt embeddings ``[B, L, D]``."""
        if len(images) != len(layout.image_keys):
            raise ValueError(f"layout {layout.task_type} has {len(layout.image_keys)} image slots, got {len(images)}")
        per_slot = [self.embed_images(x, space) for x in images]  # each [B, Q, D]
        batch = per_slot[0].shape[0]
        stacked = torch.stack(per_slot, dim=1).flatten(0, 1)  # [B * slots, Q, D], sample-major
        tokens = self.tokenize([layout])
        rows = tokens.to(stacked.device)
        rows = Tokenized(*(t.expand(batch, -1) for t in (rows.input_ids, rows.labels,
                                                          rows.attention_mask, rows.image_mask)))
        return tokens, self.embed_inputs(rows, stacked)

    def _answer(self, layout: PromptLayout, x: torch.Tensor, space: ImageSpace | None,
                max_new_tokens: int) -> Decoded:
        """Greedy answer to a one-image ``layout`` for the batch ``x``."""
        _, eos, pad = self._ids()
        prompt = self.llm_prompt(layout, [x], space)
        if self.static_decoder is not None and not torch.is_grad_enabled():
            return self.static_decoder.decode(self.base_llm, prompt.embeds, eos, pad, max_new_tokens, past=prompt.past)
        return greedy_decode(self.base_llm, prompt.embeds, eos, pad, max_new_tokens, past=prompt.past)

    def assess(self, x: torch.Tensor, space: ImageSpace | None = None, max_new_tokens: int | None = None,
               question: str | None = None) -> Assessment:
        """Identify the degradations of ``x`` (latents or images, per ``space``): greedy answer + hidden states.

        ``question`` replaces :attr:`identify_question` (the single-phrase identification question).
        """
        layout = query_layout(IDENTIFY_TASK, question or self.identify_question)
        dec = self._answer(layout, x, space, max_new_tokens or self.max_new_tokens)
        return Assessment(dec.hidden, dec.mask, self._decode(dec.tokens, dec.mask), dec.tokens)

    def describe(self, x: torch.Tensor, question: str | None = None, space: ImageSpace | None = None,
                 max_new_tokens: int | None = None) -> list[str]:
        """Free-form answer to ``question`` (default: the identification question without the
        single-word tail, which DepictQA answers with a sentence)."""
        layout = query_layout(IDENTIFY_TASK, question or self.describe_question)
        dec = self._answer(layout, x, space, max_new_tokens or 4 * self.max_new_tokens)
        return self._decode(dec.tokens, dec.mask)

    def p_better(self, x_a: torch.Tensor, x_b: torch.Tensor, space: ImageSpace | None = None,
                 question: str | None = None) -> Comparison:
        """Probability that ``x_a`` (Image A) is better than ``x_b`` (Image B), batched: ``[B]``.

        ``question`` replaces :attr:`compare_question` (the single-word comparison question)."""
        layout = query_layout(COMPARE_TASK, question or self.compare_question)
        prefix, id_a, id_b = self._choice_tokens()
        prompt = self.llm_prompt(layout, [x_a, x_b], space)
        embed = self.base_llm.get_input_embeddings()
        shared = embed(torch.tensor(prefix, device=prompt.embeds.device)).to(prompt.embeds.dtype)
        inputs = torch.cat([prompt.embeds, shared.unsqueeze(0).expand(prompt.embeds.shape[0], -1, -1)], dim=1)
        out = self.base_llm.model(inputs_embeds=inputs, past_key_values=prompt.past, use_cache=prompt.past is not None)
        logits = self.base_llm.lm_head(out.last_hidden_state[:, -1]).float()
        diff = logits[:, id_a] - logits[:, id_b]
        return Comparison(torch.sigmoid(diff), diff)

    def _choice_tokens(self) -> tuple[list[int], int, int]:
        """Shared answer prefix ids and the first differing ids of "Image A" / "Image B"."""
        tok = self._tokenizer()
        a, b = tok([answer_text("Image A"), answer_text("Image B")], add_special_tokens=False)["input_ids"]
        k = next((i for i, (u, v) in enumerate(zip(a, b, strict=False)) if u != v), None)
        if k is None:
            raise ValueError(f"the tokenizer does not distinguish 'Image A' from 'Image B': {a} vs {b}")
        return a[:k], a[k], b[k]

    def _decode(self, tokens: torch.Tensor, mask: torch.Tensor) -> list[str]:
        _, _, pad = self._ids()
        ids = tokens.masked_fill(~mask, pad).tolist()
        return [t.strip() for t in self._tokenizer().batch_decode(ids, skip_special_tokens=True)]
