"""The LQA condition source: ``c = text_adapter(LQA.assess(z_lq).hidden)`` for the UIR stages.

Implements :class:`rar.conditioning.sources.ConditionSource`. In the "Pixel" ablation
(``lqa.image_space == "pixel"``) the LQA reads the decoded image instead of the latent.
Runs under the caller's grad mode: in the joint stage gradients reach the LQA through the
hidden states; in ``uir`` the LQA is frozen and nothing is recorded for it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rar.conditioning.condition import Condition
from rar.conditioning.sources import ConditionInputs


class LQACondition:
    """Condition from the LQA's identification hidden states through the text adapter.

    Args:
        deterministic: assess with the LQA in eval mode (no LoRA/abstractor dropout) even while
            the stage trains, restoring its mode afterwards; the text adapter keeps its own mode.
    """

    requires = ("autoencoder", "lqa", "text_adapter")

    def __init__(self, deterministic: bool = True) -> None:
        self.deterministic = deterministic

    def __call__(self, modules: Mapping[str, torch.nn.Module], inputs: ConditionInputs) -> Condition:
        lqa = modules["lqa"]
        x = inputs.z_lq if lqa.image_space == "latent" else modules["autoencoder"].decode(inputs.z_lq).clamp(0, 1)
        was_training = lqa.training
        if self.deterministic:
            lqa.eval()
        try:
            assessment = lqa.assess(x)
        finally:
            lqa.train(was_training)
        return modules["text_adapter"](assessment.hidden, assessment.mask)
