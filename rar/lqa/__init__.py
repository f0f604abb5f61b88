"""LQA: the DepictQA-style latent quality assessor, its text adapter and their data.

- ``prompts``: DepictQA's conversation format and task templates (string for string).
- ``model``: :class:`DepictQA` (pixel and latent image paths, LoRA LLM) with ``assess``,
  ``p_better`` and ``describe``; ``factory``: building it from local folders / hub ids.
- ``image_adapter`` (latents → image tokens), ``abstractor``, ``pixel_encoder`` (CLIP features).
- ``text_adapter``: answer hidden states → the restorer's :class:`rar.conditioning.Condition`.
- ``records`` / ``datasets``: DepictQA JSON records and records generated from our degradations.
- ``convert``: DepictQA's released checkpoint → our ``init_from`` layout; ``tiny``: CPU stand-ins.
"""
