"""Benchmarks: ``python -m bench`` (``make bench``). Figures go to docs/benchmarks.md."""
