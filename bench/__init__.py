"""Benchmarks: wall times, engine starts and run-to-run spread, printed as figures (never asserted)."""
