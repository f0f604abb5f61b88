"""Restorer conditioning: the tensors SD3.5's text encoders produce, whoever produces them."""

from rar.conditioning.condition import Condition

__all__ = ["Condition"]
