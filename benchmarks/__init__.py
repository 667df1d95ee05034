"""Benchmarks (`make bench`): measured throughput, never asserted in tests."""
