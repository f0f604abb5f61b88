"""Evaluation harness: benchmarks, methods, pyiqa metrics, resumable sharded runs and reports."""
