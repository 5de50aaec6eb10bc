"""Micro-benchmarks: scripts run by hand, never collected by pytest (no ``test_`` prefix)."""
