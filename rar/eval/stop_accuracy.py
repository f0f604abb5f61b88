"""How well the stop rule judges the model's own rounds (issue: "a comparator that can be trusted").

Per image, the reconstruction of its input and each round's output are scored against the clean
reference (SSIM, as the harness scores them); round ``r`` *helped* when its score rose above round
``r - 1``'s. The stop rule accepts round ``r`` when ``p_better >= threshold`` (round 1: ``first_threshold``
when given, :class:`rar.pipeline.LoopConfig`). From all rounds of
all images (every round run, whatever the rule would have decided, so later rounds are judged
too):

- ``accuracy``: share of rounds where accepting agrees with helping;
- ``helped``: share of rounds that helped (the base rate an "always reject" rule scores as 1 - it);
- ``auc``: how well ``p_better`` ranks helping above harmful rounds (0.5 = chance);
- ``first_round_accuracy``: the same as ``accuracy`` for round 1 only (the decision RAR makes on
  every image);
- ``policy``, ``oracle``, ``input`` means: the score RAR's rule gives (accept until the first
  rejection), the best a perfect rule could give (stop before the first harmful round), and the
  reconstructed input's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class StopAccuracy:
    """See the module docstring; ``rounds`` and ``images`` count what was scored."""

    accuracy: float
    first_round_accuracy: float
    helped: float
    auc: float
    policy: float
    oracle: float
    input: float
    rounds: int
    images: int


def auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive`` (ties count half);
    NaN when one class is empty."""
    pos, neg = scores[positive], scores[~positive]
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).float().mean()
    ties = (pos[:, None] == neg[None, :]).float().mean()
    return float(greater + 0.5 * ties)


def accepted_rounds(p_better: torch.Tensor, threshold: float, first_threshold: float | None = None) -> torch.Tensor:
    """Which rounds of one image the rule accepts: ``p_better [R] >= threshold`` (round 1 against
    ``first_threshold`` when given)."""
    bar = torch.full_like(p_better, threshold)
    if first_threshold is not None and bar.numel():
        bar[0] = first_threshold
    return p_better >= bar


def stop_round(p_better: torch.Tensor, threshold: float, first_threshold: float | None = None) -> int:
    """The round whose output the rule keeps for one image (0 = its input): the last one before the
    first rejection."""
    rejected = (~accepted_rounds(p_better, threshold, first_threshold)).nonzero()
    return int(rejected[0, 0]) if rejected.numel() else p_better.shape[0]


def stop_accuracy(scores: Sequence[torch.Tensor], p_better: Sequence[torch.Tensor], threshold: float = 0.5,
                  first_threshold: float | None = None) -> StopAccuracy:
    """``scores[i]``: ``[R + 1]`` image ``i``'s score of its input reconstruction, then of each
    round; ``p_better[i]``: ``[R]`` the rule's probability for each round (see the module doc)."""
    if len(scores) != len(p_better) or not scores:
        raise ValueError(f"need one score row per p_better row (> 0), got {len(scores)} and {len(p_better)}")
    helped, accepted, policy, oracle = [], [], [], []
    for s, p in zip(scores, p_better, strict=True):
        s, p = torch.as_tensor(s, dtype=torch.float64), torch.as_tensor(p, dtype=torch.float64)
        if s.shape != (p.shape[0] + 1,):
            raise ValueError(f"scores must have one more entry than p_better, got {tuple(s.shape)} and {tuple(p.shape)}")
        helped.append(s[1:] > s[:-1])
        accepted.append(accepted_rounds(p, threshold, first_threshold))
        policy.append(float(s[stop_round(p, threshold, first_threshold)]))
        harm = (~helped[-1]).nonzero()
        oracle.append(float(s[int(harm[0, 0]) if harm.numel() else p.shape[0]]))
    h, a = torch.cat(helped), torch.cat(accepted)
    first = torch.stack([x[0] for x in helped]) == torch.stack([x[0] for x in accepted])
    return StopAccuracy(
        accuracy=float((h == a).double().mean()), first_round_accuracy=float(first.double().mean()),
        helped=float(h.double().mean()), auc=auc(torch.cat([torch.as_tensor(p, dtype=torch.float64) for p in p_better]), h),
        policy=sum(policy) / len(policy), oracle=sum(oracle) / len(oracle),
        input=sum(float(s[0]) for s in scores) / len(scores), rounds=int(h.numel()), images=len(scores),
    )
