"""Auditors' reads of entries and their payloads."""
