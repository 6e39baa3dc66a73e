"""Throughput, latency and memory harness; `python -m benchmarks --help`."""
