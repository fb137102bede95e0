"""Benchmarks of the executor and the stack (`python bench/run.py`); measurements, not tests."""
