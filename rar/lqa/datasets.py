"""LQA training data: DepictQA JSON records on disk, or records generated from our degradations.

Both datasets yield :class:`LQASample` (a prompt layout + its images) and share
:func:`collate_lqa`. Tokenisation happens in the model (as in DepictQA), so the data side needs
no tokenizer. Every image is a float ``[3, H, W]`` in ``[0, 1]``; a batch needs one size
(fixed crops), the stage encodes images to latents when it trains the latent path.

Generated records follow DepictQA's templates (``build_datasets/scripts``):

- identification (``quality_single_A_noref``): a degraded crop (or, with ``p_clean``, the
  clean crop: answer "None" / DepictQA's no-distortion sentence). With ``p_single`` the question
  takes the single-word tail and the answer is the degradation phrase (``"Noise, haze"``), else
  the brief sentence of the template.
- comparison (``quality_compare_noref``): the degraded crop against a less degraded version of
  it: the clean crop (``p_compare_clean``) or ``hq + t (lq - hq)`` with ``t ~ U(0.1, 0.6)``
  (a lighter version of the same degradations); Image A/B order is random, so both orders occur.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rar.data.seeding import item_generator
from rar.lqa.prompts import (
    BRIEF_GOOD,
    COMPARE_QUESTION,
    COMPARE_TASK,
    COMPARE_TEMPLATES,
    IDENTIFY_QUESTION,
    IDENTIFY_TASK,
    IDENTIFY_TEMPLATES,
    SINGLE_Q_TAIL,
    PromptLayout,
    Turn,
    build_layout,
    identification_answer,
)
from rar.lqa.records import DepictQARecord, read_weighted
from rar.utils.image_io import load_image


@dataclass
class LQASample:
    """One record ready for the model.

    Attributes:
        layout: the DepictQA prompt + answer.
        images: ``[n, 3, H, W]`` in ``[0, 1]``, one per image slot, in slot order.
        better: 1.0 if Image A is the better image, 0.0 if Image B, NaN for non-comparisons.
        id: record id.
        image_texts: per image, its ground-truth degradation text as ``describe`` gives it
            (``"noise, haze"``; ``""`` for a clean image: the text the ``uir`` stage's
            ``TextCondition`` uses), or None where unknown (blends, records read from disk).
    """

    layout: PromptLayout
    images: torch.Tensor
    better: float
    id: str
    image_texts: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.image_texts:
            self.image_texts = (None,) * self.images.shape[0]
        if len(self.image_texts) != self.images.shape[0]:
            raise ValueError(f"{self.id}: {len(self.image_texts)} image_texts for {self.images.shape[0]} images")


@dataclass
class LQABatch:
    """A collated batch: ``images [N_img, 3, H, W]`` fill the layouts' slots in order;
    ``image_owner [N_img]`` is each image's row; ``better [B]`` and ``image_texts [N_img]`` as in
    :class:`LQASample`."""

    layouts: list[PromptLayout]
    images: torch.Tensor
    image_owner: torch.Tensor
    better: torch.Tensor
    ids: list[str]
    image_texts: list[str | None]

    def to(self, device, non_blocking: bool = False) -> LQABatch:
        return LQABatch(self.layouts, self.images.to(device, non_blocking=non_blocking),
                        self.image_owner.to(device), self.better.to(device), self.ids, self.image_texts)

    def __len__(self) -> int:
        return len(self.layouts)


def collate_lqa(samples: Sequence[LQASample]) -> LQABatch:
    if not samples:
        raise ValueError("collate_lqa got no samples")
    shapes = {tuple(s.images.shape[1:]) for s in samples}
    if len(shapes) > 1:
        raise ValueError(f"cannot batch images of different sizes {sorted(shapes)}; use a fixed crop/size")
    owner = torch.cat([torch.full((s.images.shape[0],), i, dtype=torch.long) for i, s in enumerate(samples)])
    return LQABatch([s.layout for s in samples], torch.cat([s.images for s in samples]), owner,
                    torch.tensor([s.better for s in samples], dtype=torch.float32), [s.id for s in samples],
                    [t for s in samples for t in s.image_texts])


def _square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bicubic, antialiased) and centre-crop ``size x size``."""
    h, w = img.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = F.interpolate(img[None], size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return img[:, top : top + size, left : left + size].clamp(0, 1)


class DepictQAJsonDataset(Dataset):
    """DepictQA's training metas (``meta_paths`` under ``root``, repeated by ``weights``).

    Args:
        root: dataset root the record image paths are relative to.
        meta_paths: JSON files of records.
        weights: repetitions per file (DepictQA's ``meta_paths_weights``).
        size: every image is resized (shorter side) and centre-cropped to ``size x size`` so a
            batch stacks and the autoencoder gets a fixed size (the same crop for A and B).
    """

    def __init__(self, root: str | Path, meta_paths: Sequence[str], weights: Sequence[int] | None = None,
                 size: int = 512) -> None:
        self.root = Path(root)
        self.records: list[DepictQARecord] = read_weighted(self.root, meta_paths, weights)
        self.size = size

    def __len__(self) -> int:
        return len(self.records)

    def collate(self, samples: Sequence[LQASample]) -> LQABatch:
        return collate_lqa(samples)

    def __getitem__(self, index: int) -> LQASample:
        record = self.records[index]
        images = torch.stack([_square(load_image(self.root / p), self.size) for p in record.image_paths()])
        better = float("nan")
        if record.task_type.startswith("quality_compare"):
            answer = record.layout().answers[-1] if record.layout().answers else ""
            better = 1.0 if "Image A" in answer else 0.0 if "Image B" in answer else float("nan")
        return LQASample(record.layout(), images, better, record.id)


def _label_text(labels) -> str:
    from rar.degradations import describe

    return describe(labels)


class IQARecords:
    """Draws one DepictQA-style identification or comparison record from a restoration sample.

    The record recipe of :class:`SyntheticIQADataset`, usable on its own wherever degraded/clean
    pairs with labels are at hand (the ``joint`` stage's assessment loss builds records from its
    training batch with it).

    Args:
        p_compare: probability that a record is a comparison (else identification).
        p_clean: probability that an identification record shows the clean crop.
        p_single: probability of the single-word question/answer form (DepictQA: 0.5).
        p_compare_clean: probability that the better comparison image is the clean crop.
        vary_questions: draw questions from DepictQA's template lists; False asks only the two
            questions the assessment API uses.
        describe: labels → phrase (default :func:`rar.degradations.describe`, e.g. "noise, haze").
    """

    def __init__(
        self,
        p_compare: float = 0.5,
        p_clean: float = 0.1,
        p_single: float = 0.5,
        p_compare_clean: float = 0.5,
        vary_questions: bool = True,
        describe: Callable[[list], str] | None = None,
    ) -> None:
        for name, p in (("p_compare", p_compare), ("p_clean", p_clean), ("p_single", p_single),
                        ("p_compare_clean", p_compare_clean)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.p_compare, self.p_clean = p_compare, p_clean
        self.p_single, self.p_compare_clean = p_single, p_compare_clean
        self.vary_questions = vary_questions
        self.describe = describe or _label_text

    def draw(self, sample, rid: str, generator: torch.Generator | None = None) -> LQASample:
        """One record of ``sample`` (``.lq``, ``.hq`` ``[3, H, W]`` of one size, ``.labels``), its
        choices drawn from ``generator`` (the global RNG when None); ``rid`` names the record."""
        if sample.lq.shape != sample.hq.shape:
            raise ValueError(f"LQ {tuple(sample.lq.shape)} and HQ {tuple(sample.hq.shape)} differ; "
                             "use resize_lq_to_hq=True in the source dataset")
        u = torch.rand(6, generator=generator).tolist()
        template = int(torch.randint(0, len(IDENTIFY_TEMPLATES), (1,), generator=generator))
        single = u[1] < self.p_single
        if u[0] < self.p_compare:
            return self._compare(sample, u, template, single, rid)
        return self._identify(sample, u, template, single, rid)

    def _identify(self, sample, u, template, single, rid) -> LQASample:
        clean = u[2] < self.p_clean or not sample.labels
        phrase = "" if clean else self.describe(sample.labels)
        question, brief = IDENTIFY_TEMPLATES[template] if self.vary_questions else IDENTIFY_TEMPLATES[0]
        if not self.vary_questions:
            question = IDENTIFY_QUESTION
        if single:
            turns = [Turn("human", question + SINGLE_Q_TAIL), Turn("gpt", identification_answer(phrase))]
        else:
            turns = [Turn("human", question), Turn("gpt", BRIEF_GOOD if clean else brief.format(phrase))]
        image = sample.hq if clean else sample.lq
        return LQASample(build_layout(IDENTIFY_TASK, turns), image[None], float("nan"), f"{rid}-identify", (phrase,))

    def _compare(self, sample, u, template, single, rid) -> LQASample:
        if u[3] < self.p_compare_clean:
            better_img, better_text = sample.hq, ""
        else:
            t = 0.1 + 0.5 * u[4]
            better_img, better_text = (sample.hq + t * (sample.lq - sample.hq)).clamp(0, 1), None
        worse_text = self.describe(sample.labels)
        a_better = u[5] < 0.5
        images = torch.stack([better_img, sample.lq] if a_better else [sample.lq, better_img])
        texts = (better_text, worse_text) if a_better else (worse_text, better_text)
        letter = "A" if a_better else "B"
        question, brief = COMPARE_TEMPLATES[template % len(COMPARE_TEMPLATES)]
        if not self.vary_questions:
            question, brief = COMPARE_QUESTION, COMPARE_TEMPLATES[4][1]
        if single:
            turns = [Turn("human", question + SINGLE_Q_TAIL), Turn("gpt", f"Image {letter}")]
        else:
            turns = [Turn("human", question), Turn("gpt", brief.format(letter))]
        return LQASample(build_layout(COMPARE_TASK, turns), images, 1.0 if a_better else 0.0, f"{rid}-compare", texts)


class SyntheticIQADataset(Dataset):
    """DepictQA-style identification and comparison records from degraded crops.

    Args:
        source: a dataset of restoration samples (``.lq``, ``.hq`` ``[3, H, W]``, ``.labels``),
            e.g. :class:`rar.data.synthetic.SyntheticDataset`; LQ and HQ must have one size.
        p_compare, p_clean, p_single, p_compare_clean, vary_questions, describe: the record
            recipe (:class:`IQARecords`).
        seed: seed of the record choices (crops and degradations are seeded by ``source``).
    """

    def __init__(
        self,
        source: Dataset,
        p_compare: float = 0.5,
        p_clean: float = 0.1,
        p_single: float = 0.5,
        p_compare_clean: float = 0.5,
        vary_questions: bool = True,
        seed: int = 0,
        describe: Callable[[list], str] | None = None,
    ) -> None:
        self.records = IQARecords(p_compare, p_clean, p_single, p_compare_clean, vary_questions, describe)
        self.source = source
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.source, "set_epoch"):
            self.source.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def collate(self, samples: Sequence[LQASample]) -> LQABatch:
        return collate_lqa(samples)

    def __getitem__(self, index: int) -> LQASample:
        sample = self.source[index]
        g = item_generator("lqa-records", self.seed, self.epoch, index)
        return self.records.draw(sample, f"{getattr(sample, 'name', 'sample')}-{self.epoch}-{index}", g)
