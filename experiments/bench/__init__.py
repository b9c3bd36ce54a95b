"""Benchmarks that write figures to files: `python -m experiments.bench service --out FILE`."""
