"""Administration: logs, credentials and checkpoint signing keys."""
