"""Evidence bundles: one document as first seen, verifiable by anyone with ``sha256sum``.

A bundle is a zip holding the page's raw bytes, its headers and fetch time, the attachments
and the screenshot (each as fetched), the extracted text and fields, the detections, and
``manifest.json`` listing every file with its SHA-256. Pages get deleted after press
inquiries; the bundle is what an analyst can hand to a trust-and-safety team or a journalist.

File names inside the bundle are built from hashes and fixed suffixes, never from fetched strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from index.store import Detection, Document, Snapshot, Store
from loophole import __version__
from loophole.config import Settings

BUNDLE_VERSION = 1
_SUFFIXES = {"text/html": ".html", "application/pdf": ".pdf", "image/png": ".png", "application/json": ".json"}
_FORMAT_SUFFIXES = {"pdf": ".pdf", "docx": ".docx", "xlsx": ".xlsx", "xls": ".xls", "doc": ".doc", "zip": ".zip"}


class EvidenceError(ValueError):
    """The bundle cannot be written or does not verify; the message says which part."""


@dataclass
class _Bundle:
    files: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)

    def add(self, path: str, data: bytes, **meta: Any) -> None:
        self.files.append((path, data, meta))

    def manifest(self, document: dict[str, Any]) -> dict[str, Any]:
        entries = [{"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **meta}
                   for name, data, meta in self.files]
        return {"bundle_version": BUNDLE_VERSION, "created_at": datetime.now(UTC).isoformat(),
                "tool": f"loophole-watch {__version__}", "document": document, "files": entries}


def _snapshot_bytes(snapshot: Snapshot) -> bytes:
    """The stored bytes, checked against the hash they are filed under."""
    try:
        data = Path(snapshot.path).read_bytes()
    except OSError as exc:
        raise EvidenceError(f"snapshot {snapshot.sha256} missing at {snapshot.path}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != snapshot.sha256:
        raise EvidenceError(f"snapshot {snapshot.sha256} at {snapshot.path} does not match its hash")
    return data


def _provenance(snapshot: Snapshot, role: str) -> dict[str, Any]:
    return {"role": role, "url": snapshot.url, "final_url": snapshot.final_url, "status": snapshot.status,
            "fetched_at": snapshot.fetched_at.isoformat() if snapshot.fetched_at else None,
            "render_mode": snapshot.render_mode, "headers": snapshot.headers}


def _suffix(snapshot: Snapshot) -> str:
    content_type = str((snapshot.headers or {}).get("content-type", "")).split(";")[0].strip().lower()
    return _SUFFIXES.get(content_type, ".bin")


def _collect(session: Any, doc: Document) -> _Bundle:
    bundle = _Bundle()
    page = session.get(Snapshot, doc.sha256)
    if page is None:
        raise EvidenceError(f"document {doc.id}: no snapshot recorded for {doc.sha256}")
    bundle.add(f"page/{doc.sha256}{_suffix(page)}", _snapshot_bytes(page), **_provenance(page, "page"))
    for index, attachment in enumerate((doc.fields or {}).get("attachments", []), start=1):
        snapshot = session.get(Snapshot, attachment.get("sha256", "")) if attachment.get("sha256") else None
        if snapshot is not None:
            suffix = _FORMAT_SUFFIXES.get(attachment.get("format", ""), ".bin")
            bundle.add(f"attachments/{index:02d}-{snapshot.sha256[:16]}{suffix}", _snapshot_bytes(snapshot),
                       name=attachment.get("name", ""), **_provenance(snapshot, "attachment"))
    shot = (doc.fields or {}).get("screenshot_sha256")
    if shot and (snapshot := session.get(Snapshot, shot)) is not None:
        bundle.add("screenshot.png", _snapshot_bytes(snapshot), **_provenance(snapshot, "screenshot"))
    return bundle


def _extracted(session: Any, doc: Document) -> dict[str, Any]:
    detections = session.scalars(select(Detection).where(Detection.doc_id == doc.id)).all()
    return {"title": doc.title, "kind": doc.kind, "lang": doc.lang, "published": doc.published,
            "encoding": doc.encoding, "process_id": doc.process_id, "fields": doc.fields, "entities": doc.entities,
            "detections": [{"pattern": d.pattern_id, "score": d.score, "flagged": d.flagged, "sentence": d.sentence,
                            "model": d.model_id, "library_version": d.library_version} for d in detections]}


def write_bundle(settings: Settings, doc_id: int, out: Path) -> dict[str, Any]:
    """Write the bundle for ``doc_id`` to ``out`` (a .zip, written atomically); returns its manifest."""
    store = Store(settings.db_url)
    try:
        with store.session() as session:
            doc = session.get(Document, doc_id)
            if doc is None:
                raise EvidenceError(f"no document with id {doc_id}")
            bundle = _collect(session, doc)
            bundle.add("text.txt", doc.text.encode("utf-8"), role="extracted-text")
            bundle.add("extracted.json", json.dumps(_extracted(session, doc), ensure_ascii=False, indent=2,
                                                    default=str).encode("utf-8"), role="extracted-fields")
            manifest = bundle.manifest({"id": doc.id, "url": doc.url, "source": doc.source, "sha256": doc.sha256})
    finally:
        store.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, _ in bundle.files:
            archive.writestr(name, data)
        archive.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
    os.replace(tmp, out)
    return manifest


def verify_bundle(path: Path) -> list[str]:
    """Problems found (empty when every file is present and matches its manifest hash)."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            names = set(archive.namelist())
            problems = []
            for entry in manifest["files"]:
                if entry["path"] not in names:
                    problems.append(f"{entry['path']}: missing")
                elif hashlib.sha256(archive.read(entry["path"])).hexdigest() != entry["sha256"]:
                    problems.append(f"{entry['path']}: SHA-256 does not match the manifest")
            extra = names - {entry["path"] for entry in manifest["files"]} - {"manifest.json"}
            problems += [f"{name}: not in the manifest" for name in sorted(extra)]
            return problems
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        return [f"{path}: not a readable bundle: {exc}"]
