"""Benchmarks: each module has ``run() -> list[dict]`` and prints ratios against baselines
measured in the same process (these machines are noisy; absolute times are only context)."""
