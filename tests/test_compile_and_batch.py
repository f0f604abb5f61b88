"""Regional compilation of repeated blocks, and the largest-batch search of the training bench."""

from __future__ import annotations

import pytest
import torch

from rar.core.compile import compile_repeated_blocks, uncompile_repeated_blocks
from rar.perf.training import largest_batch
from rar.training.loop import TrainConfig
from rar.uir.backbones import SD3_PRESETS, build_sd3_transformer


def test_blocks_compile_in_place_and_keep_outputs():
    model = build_sd3_transformer(config=dict(SD3_PRESETS["tiny"], num_layers=2)).backbone.eval()
    blocks = [m for m in model.modules() if type(m).__name__ == "JointTransformerBlock"]
    x = torch.randn(1, model.config.in_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(1, 4, model.config.joint_attention_dim)
    pooled = torch.randn(1, model.config.pooled_projection_dim)
    t = torch.tensor([500.0])
    with torch.no_grad():
        eager = model(x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t).sample
        names = list(model.state_dict())
        assert compile_repeated_blocks(model, backend="eager") == len(blocks) == 2
        assert all(b._compiled_call_impl is not None for b in blocks)
        compiled = model(x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t).sample
    assert list(model.state_dict()) == names  # checkpoints keep their tensor names
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    uncompile_repeated_blocks(model)
    assert all(b._compiled_call_impl is None for b in blocks)
    assert TrainConfig(compile_blocks=True).compile_blocks


@pytest.mark.parametrize(("capacity", "start", "expected"), [(12, 1, 12), (12, 4, 12), (3, 4, None), (64, 2, 64),
                                                             (2000, 1, 1024)])
def test_largest_batch_search(capacity, start, expected):
    tried = []

    def fits(b):
        tried.append(b)
        if b > capacity:
            raise torch.cuda.OutOfMemoryError(f"batch {b}")

    assert largest_batch(fits, start=start, limit=1024) == expected
    assert len(tried) == len(set(tried))  # no size tried twice


def test_other_errors_are_not_swallowed():
    def broken(b):
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        largest_batch(broken)
