"""Anchoring: publishing checkpoints outside the database (directory, webhook, witness)."""
