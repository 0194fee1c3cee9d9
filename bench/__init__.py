"""Benchmarks of issue 11: each row side by side with its baseline, measured in one run."""
