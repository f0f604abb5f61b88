"""Types and utilities below every other package of ``rar`` that uses them: what a method returns
(:mod:`rar.core.outputs`), stage timing (:mod:`rar.core.timing`), safetensors writing
(:mod:`rar.core.tensor_files`), train/eval mode for a block (:mod:`rar.core.modes`). Nothing here
imports ``rar.pipeline``, ``rar.baselines``, ``rar.eval`` or ``rar.training``."""
