"""Micro-benchmarks (pytest-benchmark); see conftest.py."""
