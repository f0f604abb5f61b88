"""The CLIP-IQA ablation (paper Table 4): a CLIP n-way degradation classifier replaces DepictQA.

Each round, as in the naive pipeline (:mod:`rar.baselines.naive`), but the assessment is a
zero-shot CLIP classification of the pixels against AutoDIR's SA-CLIP degradation labels::

    label = argmax_k softmax(s * cos(CLIP_img(x), CLIP_txt("a photo with {label_k}")))
    c     = TextEncoders(label)                     # SD3.5's CLIP-L, CLIP-G, T5
    x_new = AE.decode(UIR(AE.encode(x), c))

The restoration stage is the naive pipeline's (same wiring class, same integrator). A classifier
cannot say whether one image is better than another, so the only stop rule is ``stop="fixed"``
(every image runs ``max_rounds`` rounds); ``stop="compare"`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, CLIPModel

from rar.baselines.loop import PixelStatePipeline
from rar.baselines.naive import PixelWiring
from rar.conditioning.condition import Condition
from rar.conditioning.sd3_text import SD3TextConditioner, build_sd3_text_conditioner
from rar.core.assessor import Assessor
from rar.core.timing import StageClock
from rar.pipeline.config import LoopConfig
from rar.pipeline.model_folder import (
    load_sd3_text,
    parse_dtype,
    read_model_folder,
    realign,
)
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel

SA_CLIP_LABELS: tuple[str, ...] = (
    "noise", "blur", "rain", "underexposure", "haze", "low resolution", "raindrop", "no degradation",
)
"""AutoDIR's SA-CLIP degradation classes, in its order."""

PROMPT_TEMPLATE = "a photo with {label}"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipLabels:
    """A batch's classification.

    Attributes:
        labels: per image, the most probable label (one of the classifier's ``labels``).
        probs: ``[B, K]`` float32, softmax over the ``K`` labels (rows sum to 1).
    """

    labels: list[str]
    probs: torch.Tensor


def _pooled(output) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers < 5) or an output whose ``pooler_output`` is projected."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class CLIPDegradationClassifier(nn.Module):
    """Zero-shot n-way degradation classification with a ``CLIPModel``; frozen.

    The label prompts are embedded once, at construction, and kept as a (non-persistent) buffer,
    so they follow ``.to(device)``. Images are preprocessed in torch: bicubic resize of the whole
    image to the vision tower's square ``image_size`` (no centre crop: degradations anywhere in the
    frame count), then CLIP's mean/std.

    Args:
        model: a ``transformers.CLIPModel``.
        tokenizer: its tokenizer.
        labels: class names; prompts are ``template.format(label=...)``.
        template: prompt template.
        mean, std: per-channel normalisation of ``[0, 1]`` RGB.
    """

    def __init__(
        self,
        model: CLIPModel,
        tokenizer,
        labels: tuple[str, ...] = SA_CLIP_LABELS,
        template: str = PROMPT_TEMPLATE,
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
    ) -> None:
        super().__init__()
        if len(labels) < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {list(labels)}")
        self.model = model
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.prompts = [template.format(label=label) for label in self.labels]
        self.image_size = model.config.vision_config.image_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        tokens = tokenizer(self.prompts, padding="max_length", truncation=True, return_tensors="pt")
        with torch.no_grad():
            text = _pooled(model.get_text_features(input_ids=tokens["input_ids"],
                                                   attention_mask=tokens["attention_mask"]))
        self.register_buffer("text_features", F.normalize(text.float(), dim=-1), persistent=False)

    def train(self, mode: bool = True) -> CLIPDegradationClassifier:
        """Inference only: stays in eval mode."""
        return super().train(False)

    @classmethod
    def from_pretrained(
        cls, pretrained: str | Path, dtype: str | torch.dtype | None = None, **kwargs
    ) -> CLIPDegradationClassifier:
        """Load a ``CLIPModel`` and its tokenizer from a local folder or hub id (``kwargs``: labels,
        template, mean, std)."""
        model = CLIPModel.from_pretrained(str(pretrained), dtype=parse_dtype(dtype))
        tokenizer = AutoTokenizer.from_pretrained(str(pretrained))
        return cls(model, tokenizer, **kwargs)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in ``[0, 1]`` → CLIP pixel values ``[B, 3, S, S]`` (S = ``image_size``)."""
        size = (self.image_size, self.image_size)
        x = F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
        return (x.clamp(0, 1) - self.mean) / self.std

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> ClipLabels:
        """Classify ``images [B, 3, H, W]`` in ``[0, 1]`` among :attr:`labels`."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"CLIPDegradationClassifier expects images [B,3,H,W], got {tuple(images.shape)}")
        pixels = self.preprocess(images.to(self.mean.device)).to(self.model.dtype)
        image = F.normalize(_pooled(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1)
        logits = self.model.logit_scale.exp().float() * image @ self.text_features.T
        probs = logits.softmax(dim=-1)
        return ClipLabels([self.labels[i] for i in probs.argmax(dim=-1).tolist()], probs)


class ClipIQAPipeline(PixelStatePipeline):
    """CLIP label → SD3.5 text encoders → restore → decode → repeat (``stop="fixed"`` only).

    Args:
        autoencoder, uir: as in :class:`rar.pipeline.RARPipeline` (noise-free or noise-start UIR).
        classifier: the assessor.
        conditioner: SD3.5's text encoders (label text → :class:`Condition`).
        config: loop settings; ``stop`` must be ``"fixed"``.
        cache_text: let the conditioner reuse embeddings of labels it has seen (False: encode every
            round, as the naive pipeline pays it).
    """

    def __init__(
        self,
        autoencoder: LatentAutoencoder,
        uir: UIRModel,
        classifier: CLIPDegradationClassifier,
        conditioner: SD3TextConditioner,
        config: LoopConfig | None = None,
        cache_text: bool = False,
    ) -> None:
        super().__init__()
        config = config or LoopConfig(stop="fixed")
        if config.stop != "fixed":
            raise ValueError(f"the CLIP classifier cannot compare two images: stop must be 'fixed', got {config.stop!r}")
        self.autoencoder = autoencoder
        self.uir = uir
        self.classifier = classifier
        self.conditioner = conditioner
        self.config = config
        self.cache_text = cache_text
        realign(self)
        self.eval()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        clip: str | Path | CLIPDegradationClassifier,
        conditioner: str | Path | SD3TextConditioner | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        t5_max_length: int = 256,
        cache_text: bool = False,
        **loop_settings,
    ) -> ClipIQAPipeline:
        """Build from a RAR model folder (its autoencoder and UIR; loop settings from ``rar_config.json``
        with ``stop="fixed"`` unless overridden), a CLIP folder/hub id and the text encoders.

        Args:
            path: RAR model folder.
            clip: CLIP folder or hub id (``CLIPModel`` + tokenizer), or a built classifier.
            conditioner: ``None`` — the folder's ``conditioner/``; a saved conditioner component
                folder (with ``config.json``); an SD3.5 folder or hub id (``text_encoder{,_2,_3}``,
                read with ``t5_max_length``); or a built conditioner.
            device, dtype: where and in which dtype every component goes (default: as saved, CPU).
            t5_max_length: T5 token length for an SD3.5 folder (SD3.5: 256).
            cache_text: see the class.
            loop_settings: override the folder's loop settings (e.g. ``max_rounds=2``).
        """
        torch_dtype = parse_dtype(dtype)
        skip = ("lqa", "text_adapter") + (("conditioner",) if conditioner is not None else ())
        folder = read_model_folder(path, torch_dtype, skip=skip)
        parts = dict(folder.components)
        if conditioner is None and "conditioner" not in parts:
            raise ValueError(f"{path} holds no text encoders (conditioner); pass conditioner=<SD3.5 folder>")
        if isinstance(conditioner, (str, Path)):
            if (Path(conditioner) / "config.json").is_file():
                conditioner = load_sd3_text(Path(conditioner), torch_dtype)
            else:
                conditioner = build_sd3_text_conditioner(
                    str(conditioner), t5_max_length=t5_max_length,
                    torch_dtype=str(torch_dtype).removeprefix("torch.") if torch_dtype is not None else None)
        if conditioner is not None:
            parts["conditioner"] = conditioner
        if not isinstance(clip, CLIPDegradationClassifier):
            clip = CLIPDegradationClassifier.from_pretrained(clip, dtype=torch_dtype)
        parts["classifier"] = clip
        if device is not None:
            parts = {name: m.to(device) for name, m in parts.items()}
        config = folder.config.replace(**{"stop": "fixed", **loop_settings})
        return cls(parts["autoencoder"], parts["uir"], parts["classifier"], parts["conditioner"], config,
                   cache_text=cache_text)

    def wiring(self, clock: StageClock) -> _ClipWiring:
        return _ClipWiring(self, clock)


class _ClipWiring(PixelWiring):
    """The naive pixel wiring with the CLIP classifier as the assessor (no comparison)."""

    def condition(self, x: torch.Tensor, round_index: int, step: int) -> tuple[Condition, list[str]]:
        labels = self.pipe.classifier.classify(x).labels
        with self.clock.section("text_encode"):
            if not self.pipe.cache_text:
                self.pipe.conditioner.clear_cache()
            cond = self.pipe.conditioner(labels).to(x.device)
        return cond, labels

    def compare(self, new: torch.Tensor, old: torch.Tensor, round_index: int) -> torch.Tensor:
        raise RuntimeError("the CLIP classifier cannot compare two images; ClipIQAPipeline runs with stop='fixed'")


def clip_assessor(path: str | Path, name: str = "CLIP zero-shot", device: str | torch.device = "cpu") -> Assessor:
    """A zero-shot CLIP classifier over AutoDIR's SA-CLIP labels (identification only)."""
    classifier = CLIPDegradationClassifier.from_pretrained(str(path)).to(device)
    return Assessor(name, identify=lambda x: [[label] for label in classifier.classify(x).labels])
