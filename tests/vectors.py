"""Where the published known-answer vectors live: ``../shared/vectors`` beside the checkout
(see its README for provenance), or LEDGER_VECTORS_DIR. Missing vectors fail, never skip."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def vectors_dir() -> Path:
    env = os.environ.get("LEDGER_VECTORS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "vectors"


def load_notes() -> dict[str, Any]:
    path = vectors_dir() / "notes" / "signed-notes.json"
    if not path.is_file():
        raise FileNotFoundError(f"known-answer vectors missing: {path} (set LEDGER_VECTORS_DIR)")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
