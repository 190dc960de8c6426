"""Benchmarks, one module per area; each compares ours with a baseline in one run."""
