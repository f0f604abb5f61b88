"""Stage ``lqa_compare`` (ours, after ``joint``): the stop rule's comparison, trained on the
restorer's own rounds.

RAR stops when the LQA does not judge a round's output better than the round's input
(``p_better(new, over=old) < threshold``). ``lqa_finetune`` teaches comparison on synthetic pairs of
degradation levels; the restorer's outputs carry artefacts of another kind (over-smoothing, colour
shifts, the patch-grid texture of a small UIR), and the flow loss of ``joint`` reaches the LQA too.
On the tiny experiment the comparator after ``joint`` ranked its own rounds no better than chance
(AUC 0.54 on the held-out benchmark). This stage keeps the UIR and the text adapter frozen and
trains the LQA's latent path (image adapter, LoRA) on:

* pairs ``(round output, round input)`` of ``rounds`` inference rounds per example, rolled out
  exactly as the loop does (:func:`own_rounds`), labelled by ``metric`` against the clean image,
  shown in random order; with ``balance`` only as many pairs of the commoner verdict as of the
  rarer one enter the loss (most rounds of a small restorer do not help, and an unbalanced loss
  teaches "reject" alone);
* with ``qa_weight > 0``, DepictQA's own answer loss on identification / comparison records of
  the batch (:func:`assessment_loss`), so the identification answer, whose hidden states condition
  the UIR, stays what the UIR was trained with.

The paper has no such stage (its LQA is trained once, then jointly with the flow loss). On the tiny
experiment it did not help (numbers in ``docs/experiments.md``): the ranking of helping
over harmful rounds improved a little, but balanced pairs teach a 50% prior where about a third of
the rounds help, and training the shared LoRA moves the identification the UIR reads, so fewer
rounds help; ``scripts/tiny_experiment.sh`` therefore does not run it.
"""

from __future__ import annotations

import json
import pathlib

import torch

from rar.core.modes import train_mode
from rar.lqa.datasets import IQARecords
from rar.lqa.model import DepictQA
from rar.lqa.text_adapter import TextAdapter
from rar.training.stage import (
    Stage,
    StepOutput,
    first_batch,
    same_size_pair,
)
from rar.training.stages.lqa_common import assessment_loss
from rar.training.stages.round_comparison import (
    REFERENCE_METRICS,
    choice_loss,
    comparison_loss,
    own_rounds,
)
from rar.uir.autoencoders import LatentAutoencoder
from rar.uir.backbones import UIRModel

LOSSES = ("answer", "choice")


class LQACompareStage(Stage):
    """The ``lqa_compare`` stage. Children: ``autoencoder``, ``lqa``, ``text_adapter``, ``uir``.

    Args:
        autoencoder, lqa, text_adapter, uir: the trained RAR modules (``init_from`` a joint run).
        rounds: inference rounds rolled out per example (pairs per example).
        steps: Euler steps per round (the loop's ``steps_per_round``).
        metric: full-reference label of a pair (``ssim`` | ``psnr``; the round helped when its
            output scores strictly higher than its input).
        balance: equal numbers of helping and harmful rounds in each step's loss.
        loss: ``"answer"``: DepictQA's next-token loss on the answer ("Image A" / "Image B");
            ``"choice"``: binary cross-entropy on ``p_better``'s logit, the number the stop rule
            thresholds (with only the LM head trainable it touches just the two choice rows).
        qa_weight: weight of DepictQA's answer loss on records of the batch (0: none).
        qa_records: record recipe for ``qa_weight > 0`` (default :class:`IQARecords`).
        val_dataset, val_samples: restoration pairs whose rounds :meth:`validate` judges.
    """

    def __init__(
        self,
        autoencoder: LatentAutoencoder,
        lqa: DepictQA,
        text_adapter: TextAdapter,
        uir: UIRModel,
        rounds: int = 2,
        steps: int = 4,
        metric: str = "ssim",
        balance: bool = True,
        loss: str = "answer",
        qa_weight: float = 1.0,
        qa_records: IQARecords | None = None,
        val_dataset: torch.utils.data.Dataset | None = None,
        val_samples: int = 32,
    ) -> None:
        super().__init__()
        if lqa.image_space != "latent" or lqa.image_adapter is None:
            raise ValueError("lqa_compare trains the LQA's latent path: build the lqa with an image_adapter and "
                             f"image_space='latent' (got image_space={lqa.image_space!r})")
        if uir.concat_lq:
            raise ValueError("lqa_compare rolls out the noise-free loop: build the UIR with concat_lq=False")
        if rounds < 1 or steps < 1:
            raise ValueError(f"rounds and steps must be >= 1, got {rounds} and {steps}")
        if metric not in REFERENCE_METRICS:
            raise ValueError(f"metric must be one of {REFERENCE_METRICS}, got {metric!r}")
        if qa_weight < 0:
            raise ValueError(f"qa_weight must be >= 0, got {qa_weight}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.loss_kind = loss
        self.autoencoder, self.lqa, self.text_adapter, self.uir = autoencoder, lqa, text_adapter, uir
        self.rounds, self.steps, self.metric, self.balance = rounds, steps, metric, balance
        self.qa_weight, self.qa_records = qa_weight, qa_records or IQARecords()
        self.val_dataset, self.val_samples = val_dataset, val_samples
        self._val_batch = None

    def _pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return same_size_pair(batch, "lqa_compare", next(self.uir.parameters()).device)

    def forward(self, batch) -> StepOutput:
        """One step on a ``RestorationBatch``: comparison loss on the batch's own rounds (+ QA)."""
        lq, hq = self._pair(batch)
        with torch.no_grad():
            z_lq = self.autoencoder.encode(lq)
        rounds = own_rounds(self.autoencoder, self.lqa, self.text_adapter, self.uir, z_lq, hq,
                            self.rounds, self.steps, self.metric)
        pairs = rounds.pairs(self.lqa.compare_question, balance=self.balance)
        loss, logs = (choice_loss if self.loss_kind == "choice" else comparison_loss)(self.lqa, pairs)
        logs["pairs"] = float(len(pairs.layouts))
        if self.qa_weight > 0:
            qa_loss, qa_logs = assessment_loss(self.autoencoder, self.lqa, self.qa_records, batch, lq, hq)
            loss = loss + self.qa_weight * qa_loss
            logs.update(qa_logs)
        return StepOutput(loss, logs)

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        """Judge every round of the first ``val_samples`` pairs: accuracy of ``p_better > 0.5``
        against the metric's verdict, the share of helping rounds, and the mean ``p_better`` of
        helping and of harmful rounds (also written to ``out_dir/compare.json``)."""
        if self.val_dataset is None:
            return {}
        if self._val_batch is None:
            self._val_batch = first_batch(self.val_dataset, self.val_samples)
        lq, hq = self._pair(self._val_batch)
        rounds = own_rounds(self.autoencoder, self.lqa, self.text_adapter, self.uir, self.autoencoder.encode(lq), hq,
                            self.rounds, self.steps, self.metric)
        new, old = torch.cat(rounds.states[1:]), torch.cat(rounds.states[:-1])
        helped = (torch.cat(rounds.scores[1:]) > torch.cat(rounds.scores[:-1])).cpu()
        with train_mode(self.lqa, False):
            p = self.lqa.p_better(new, old, space="latent").p_better.float().cpu()
        values = {"compare_accuracy": float(((p > 0.5) == helped).float().mean()),
                  "helped_rate": float(helped.float().mean())}
        if bool(helped.any()):
            values["p_better_helped"] = float(p[helped].mean())
        if bool((~helped).any()):
            values["p_better_harmed"] = float(p[~helped].mean())
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "compare.json").write_text(json.dumps(values, indent=1))
        return values
