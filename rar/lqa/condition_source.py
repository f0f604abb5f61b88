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
from rar.lqa.assess import assess_and_adapt


class LQACondition:
    """Condition from the LQA's identification hidden states through the text adapter."""

    requires = ("autoencoder", "lqa", "text_adapter")

    def __call__(self, modules: Mapping[str, torch.nn.Module], inputs: ConditionInputs) -> Condition:
        lqa = modules["lqa"]
        x = inputs.z_lq if lqa.image_space == "latent" else modules["autoencoder"].decode(inputs.z_lq).clamp(0, 1)
        return assess_and_adapt(lqa, modules["text_adapter"], x)[0]
