"""Handoff Ledger: an append-only, verifiable audit trail for AI-to-human support handoffs."""

__version__ = "0.1.0"
