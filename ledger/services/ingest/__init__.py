"""Ingest: writers' events from request body to receipts."""
