"""``torch.compile`` in place: a whole module's forward, or each repeated transformer block.

Regional compilation compiles each repeated transformer block instead of a whole model.

A model's blocks share one class, so compiling them one by one compiles the block once and reuses
the graph for every instance (one compilation, not one per depth): a fraction of a whole-model
compile's start-up, nearly its speed, and the model keeps its structure, names and state dict.
Used for training (``trainer.compile_blocks``) and the training benchmark; :func:`compile_module`
is the inference pipeline's ``compile_uir`` switch.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

REPEATED_BLOCKS: tuple[str, ...] = (
    "JointTransformerBlock",   # SD3 MMDiT (diffusers)
    "BasicTransformerBlock",   # SD1.5 UNet's transformer blocks (diffusers)
    "LlamaDecoderLayer",       # the LQA's LLM (transformers)
)


def compile_repeated_blocks(model: nn.Module, block_names: Sequence[str] = REPEATED_BLOCKS, **compile_kwargs) -> int:
    """Compile in place every submodule of ``model`` whose class name is in ``block_names``
    (``nn.Module.compile``, keyword arguments passed on); returns how many were compiled."""
    count = 0
    for module in model.modules():
        if type(module).__name__ in block_names:
            module.compile(**compile_kwargs)
            count += 1
    return count


def uncompile_repeated_blocks(model: nn.Module, block_names: Sequence[str] = REPEATED_BLOCKS) -> None:
    """Undo :func:`compile_repeated_blocks`: the blocks run eagerly again."""
    for module in model.modules():
        if type(module).__name__ in block_names:
            compile_module(module, False)


def compile_module(module: nn.Module, enabled: bool) -> None:
    """``torch.compile`` ``module``'s forward in place, or undo it (``enabled=False``)."""
    if enabled:
        module.compile()
    else:
        module._compiled_call_impl = None  # what nn.Module.compile sets; None restores eager calls
