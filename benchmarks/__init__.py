"""Benchmarks that print the platform's performance figures; run them with ``python -m benchmarks.run``."""
