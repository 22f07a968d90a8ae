"""Raw page bytes on disk, named by SHA-256: the evidence as first seen, stored once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def snapshot_path(root: Path, sha256: str) -> Path:
    """Two-level fan-out; the name is the hash alone, so no fetched string reaches the path."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return root / sha256[:2] / f"{sha256}.bin"


def write_snapshot(root: Path, body: bytes) -> tuple[str, Path]:
    """Write atomically (temp file + rename) and return (hash, path); existing files are kept."""
    sha256 = content_hash(body)
    path = snapshot_path(root, sha256)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    return sha256, path
