"""Data: dataset specs, training datasets, composite benchmark sets, sample photos.

- ``specs``: :class:`DatasetSpec` (layout, source, licence of each public dataset; ``configs/dataset/``).
- ``paired`` / ``synthetic`` / ``mixture``: training datasets returning :class:`RestorationSample`,
  batched by ``collate_samples`` into :class:`RestorationBatch`; randomness seeded per
  ``(seed, epoch, index)``.
- ``benchmark_sets``: build / index / load AgenticIR-layout test sets with a manifest.
- ``samples``: the committed public-domain sample photos; ``depth``, ``sidd``: format readers.
"""
