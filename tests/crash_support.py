"""What the SIGKILL tests read back: the pages a killed process finished, and the vector index's ids.

Read with plain sqlite3 while the process under test may be writing (or was killed mid-write):
a locked or half-created database counts as nothing finished yet.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ground.config import Settings
from index.vectors import META_FILE, VectorIndex


def finished_urls(db: Path) -> set[str]:
    """URLs of the documents stored completely (an empty hash marks an ingest cut short)."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return {row[0] for row in conn.execute("SELECT url FROM documents WHERE sha256 != ''")}
    except sqlite3.Error:
        return set()


def index_ids(settings: Settings) -> list[int]:
    """The ids in the saved vector index, as the next process would load it."""
    meta = json.loads((settings.index_dir / META_FILE).read_text())
    return VectorIndex.load(settings.index_dir, meta["model_id"], meta["dimension"]).ids().tolist()
