"""The LQA condition source: ``c = text_adapter(LQA.assess(z_lq).hidden)`` for the UIR stages.

Implements :class:`rar.conditioning.sources.ConditionSource` through
:func:`rar.lqa.assess.assess_and_adapt` (the LQA answers in eval mode). In the "Pixel" ablation
(``lqa.image_space == "pixel"``) the LQA reads the decoded image instead of the latent. Runs under
the caller's grad mode: in ``uir`` the LQA is frozen and only the text adapter may train.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rar.conditioning.condition import Condition
from rar.conditioning.sources import ConditionInputs
from rar.core.modes import train_mode
from rar.lqa.assess import assess_and_adapt


class LQACondition:
    """Condition from the LQA's identification hidden states through the text adapter."""

    requires = ("autoencoder", "lqa", "text_adapter")

    def __call__(self, modules: Mapping[str, torch.nn.Module], inputs: ConditionInputs) -> Condition:
        lqa = modules["lqa"]
        x = inputs.z_lq if lqa.image_space == "latent" else modules["autoencoder"].decode(inputs.z_lq).clamp(0, 1)
        return assess_and_adapt(lqa, modules["text_adapter"], x)[0]


class LQAAnswerTextCondition:
    """Condition from the *text* of the LQA's answer through the ``conditioner`` (the text encoders).

    The UIR learns from the answers it will get (right or wrong) but as text only: the condition
    carries the message, not the image, as ``text_adapter(answer)`` does at inference once
    ``cond_align`` has fitted the adapter to the same encoders (the tiny experiment's
    ``condition=lqa_answer_text``; docs/experiments.md). The LQA answers in eval mode, without grad.
    """

    requires = ("autoencoder", "lqa", "conditioner")

    def __call__(self, modules: Mapping[str, torch.nn.Module], inputs: ConditionInputs) -> Condition:
        lqa = modules["lqa"]
        x = inputs.z_lq if lqa.image_space == "latent" else modules["autoencoder"].decode(inputs.z_lq).clamp(0, 1)
        with torch.no_grad(), train_mode(lqa, False):
            texts = lqa.assess(x).text
        return modules["conditioner"](texts).to(inputs.z_lq.device)
