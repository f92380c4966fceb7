"""Integrity verification: the scheduled job, its checks, its state, alerts and records."""
