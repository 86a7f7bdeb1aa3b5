"""Benchmarks (`make bench`): every figure is printed beside a baseline measured in the same run, as a ratio."""
