"""Benchmarks: run from the repository root as `python -m bench.<name>`; each prints its target."""
