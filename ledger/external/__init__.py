"""What the ledger touches outside its database: files it writes atomically (verifier state,
anchored checkpoints) and the one way it POSTs to other services."""
