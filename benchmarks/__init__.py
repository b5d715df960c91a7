"""The benchmark of the helpers against the classic loop: python benchmarks/run.py."""
