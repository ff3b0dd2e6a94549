"""Benchmarks that print their figures; run apart from the test suite (python -m bench.NAME)."""
