"""Storage: SQLAlchemy models, the unit of work, repository queries and the sequencer."""
