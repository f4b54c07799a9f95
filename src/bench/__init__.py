"""Benchmarks (``python -m src.bench <suite> [options]``); speed targets live here, not in tests."""
