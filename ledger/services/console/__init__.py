"""The auditor console's reads: its search index, and what its pages show besides trails."""
