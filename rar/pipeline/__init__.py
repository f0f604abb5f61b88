"""RAR inference: the restore → assess → repeat loop, the naive baseline and the model folder.

- ``pipeline``: :class:`RARPipeline` (one encode, latent rounds, one decode; ``save_pretrained`` /
  ``from_pretrained``; implements :class:`rar.eval.method.Method`).
- ``naive``: :class:`NaivePipeline`, the pixel → text → text-encoder loop of the paper's Eq. 1–2.
- ``loop``: the batched rounds with per-image stopping, shared by both; ``config``: :class:`LoopConfig`.
- ``results``: :class:`RestoreResult`, :class:`Trajectory`, :class:`RoundRecord`.
- ``folder`` / ``components`` / ``module_io``: the model folder and each component's (de)serialisation.
- ``prompts``: the identification prompt pool; ``assess``: asking the LQA a chosen question.
- ``geometry``: padding to the stride; ``timing``: seconds per stage; ``montage``: per-round figures;
  ``tiny``: a random tiny pipeline for tests and untrained smoke runs.
"""

from rar.pipeline.config import LoopConfig
from rar.pipeline.naive import NaivePipeline
from rar.pipeline.pipeline import RARPipeline
from rar.pipeline.results import RestoreResult, RoundRecord, Trajectory

__all__ = ["LoopConfig", "NaivePipeline", "RARPipeline", "RestoreResult", "RoundRecord", "Trajectory"]
