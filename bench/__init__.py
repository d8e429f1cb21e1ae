"""Benchmarks against the running stack: `python -m bench.<name>`."""
