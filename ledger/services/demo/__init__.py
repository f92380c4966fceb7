"""Realistic sample handoff conversations, written through the real ingest path."""
