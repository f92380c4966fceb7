"""Conversation trails: read with proofs, summarized for people, verified offline."""
