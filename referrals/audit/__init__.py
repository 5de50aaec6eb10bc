"""Tamper-evident audit trail."""
