"""Frozen text encoders as :class:`Condition` producers, each distinct text encoded once.

:class:`CachedTextEncoder` is what SD3.5's three encoders (:mod:`rar.conditioning.sd3_text`) and
SD1.5's CLIP-L (:mod:`rar.conditioning.clip_text`) share: the check of the input, an LRU cache of
``cache_size`` texts (identical texts in a batch or across rounds are encoded once), the count of
texts that went through the encoders (``encoded_texts``), and eval mode for good. A subclass gives
``_encode(texts) -> (prompt_embeds [n, L, D], pooled [n, P])`` and the encoders' ``device``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from rar.conditioning.condition import Condition


class CachedTextEncoder(torch.nn.Module):
    """Base of the text conditioners (see the module docstring)."""

    def __init__(self, cache_size: int) -> None:
        super().__init__()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.encoded_texts = 0  # texts that went through the encoders (cache misses)

    @property
    def device(self) -> torch.device:
        raise NotImplementedError  # pragma: no cover - abstract

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError  # pragma: no cover - abstract

    def train(self, mode: bool = True) -> CachedTextEncoder:
        """Stays in eval mode: the text encoders are never trained."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> Condition:
        """Encode ``texts`` (length B) → :class:`Condition` on the encoders' device."""
        name = type(self).__name__
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{name} expects a list of strings, got {texts!r}")
        if len(texts) == 0:
            raise ValueError(f"{name} got an empty list of texts")
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            embeds, pooled = self._encode(missing)
            for i, text in enumerate(missing):
                self._cache[text] = (embeds[i], pooled[i])
            self.encoded_texts += len(missing)
        rows = []
        for text in texts:
            self._cache.move_to_end(text)
            rows.append(self._cache[text])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        device = self.device
        return Condition(torch.stack([r[0] for r in rows]).to(device), torch.stack([r[1] for r in rows]).to(device))

    def clear_cache(self) -> None:
        self._cache.clear()
