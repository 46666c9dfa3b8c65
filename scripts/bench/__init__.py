"""The reusable pieces of scripts/benchmark.py: its clocks, the plain reference loop, paired measurements, the report."""
