"""Performance: analytic FLOP counts, random-initialised models at real scale, and the benchmarks
behind ``scripts/bench.py`` (inference latency split, training step time / MFU, degradation throughput)."""
