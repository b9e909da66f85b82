"""Metrics: pure functions shared by training, eval and the benchmark programs."""
