"""Exports for auditors: a period's population, a conversation's or a data subject's records, as
evidence bundles that prove their own completeness offline, and as the formats auditors' and
security tools read (JSON Lines, CSV, OCSF, an HTML report)."""
