"""RAR inference: the restore → assess → repeat loop and the model folder.

- ``pipeline``: :class:`RARPipeline`; its ``forward`` is the whole method (one encode, latent
  rounds of assess → adapt → integrate → compare, one decode, plus one of the input's latent for
  ``input_detail``); ``save_pretrained`` /
  ``from_pretrained``; implements :class:`rar.eval.method.Method`.
- ``rounds``: per-image stopping inside a batch; ``config``: :class:`LoopConfig`;
  ``results``: :class:`RestoreResult`, :class:`Trajectory`, :class:`RoundRecord`.
- ``model_folder``: the model folder and every component's (de)serialisation.
- ``base``: plumbing shared with the baselines (:mod:`rar.baselines`); ``fast_paths``: speed
  switches; ``geometry``: padding to the stride; ``prompts``: the identification prompt pool;
  ``input_detail``: the input's detail the autoencoder drops, handed back to the output;
  ``montage``: per-round figures.
"""

from rar.pipeline.config import LoopConfig
from rar.pipeline.pipeline import RARPipeline
from rar.pipeline.results import RestoreResult, RoundRecord, Trajectory

__all__ = ["LoopConfig", "RARPipeline", "RestoreResult", "RoundRecord", "Trajectory"]
