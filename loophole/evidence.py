"""Evidence bundles: one document as first seen, verifiable by anyone with ``sha256sum``.

A bundle is a zip holding the page's raw bytes, its headers and fetch time, the attachments
and the screenshot (each as fetched), the same captures as a WARC file (``capture.warc.gz``,
ISO 28500, for replay tools; loophole/warc.py), the extracted text and fields, the detections,
and ``manifest.json`` listing every file with its SHA-256. Pages get deleted after press
inquiries; the bundle is what an analyst can hand to a trust-and-safety team or a journalist.

The manifest alone names the URL, fetch time, status and headers, so it is covered too: its
own SHA-256 is recorded in the store when the bundle is written (``evidence_bundles``) and
printed, for the analyst to keep with the bundle (a case file, the covering email). A bundle
verifies only when every file matches the manifest *and* the manifest matches a recorded (or
given) hash: an edited URL or fetch time is caught even with every file hash recomputed.
A recorded hash was chosen over a signature: a signing key kept in the data directory is
stolen with the data it would vouch for, must be backed up and rotated, and a third party
must still learn the right public key out of band; a 64-character hash printed at capture
time needs none of that and is checked with ``sha256sum`` alone.

File names inside the bundle are built from hashes and fixed suffixes, never from fetched strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from ground.config import Settings
from index.store import Detection, Document, EvidenceBundle, Snapshot, Store
from loophole import __version__
from loophole.warc import Capture, check_warc, write_warc

BUNDLE_VERSION = 2
WARC_NAME = "capture.warc.gz"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_SUFFIXES = {"text/html": ".html", "application/pdf": ".pdf", "image/png": ".png", "application/json": ".json"}
_FORMAT_SUFFIXES = {"pdf": ".pdf", "docx": ".docx", "xlsx": ".xlsx", "xls": ".xls", "doc": ".doc", "zip": ".zip"}


class EvidenceError(ValueError):
    """The bundle cannot be written or does not verify; the message says which part."""


@dataclass
class _Bundle:
    files: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)

    def add(self, path: str, data: bytes, **meta: Any) -> None:
        self.files.append((path, data, meta))

    def add_capture(self, path: str, data: bytes, snapshot: Snapshot, role: str, **meta: Any) -> None:
        """A fetched file: in the bundle as it came, and as a record of the WARC file."""
        self.add(path, data, **meta, **_provenance(snapshot, role))
        self.captures.append(Capture(snapshot.url, data, snapshot.status, dict(snapshot.headers or {}),
                                     _fetched_at(snapshot), snapshot.render_mode, role, {"bundle_path": path}))

    def manifest(self, document: dict[str, Any]) -> dict[str, Any]:
        entries = [{"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **meta}
                   for name, data, meta in self.files]
        return {"bundle_version": BUNDLE_VERSION, "created_at": datetime.now(UTC).isoformat(),
                "tool": f"loophole-watch {__version__}", "document": document, "files": entries}


@dataclass
class WrittenBundle:
    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str


def _snapshot_bytes(snapshot: Snapshot) -> bytes:
    """The stored bytes, checked against the hash they are filed under."""
    try:
        data = Path(snapshot.path).read_bytes()
    except OSError as exc:
        raise EvidenceError(f"snapshot {snapshot.sha256} missing at {snapshot.path}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != snapshot.sha256:
        raise EvidenceError(f"snapshot {snapshot.sha256} at {snapshot.path} does not match its hash")
    return data


def _fetched_at(snapshot: Snapshot) -> datetime:
    stamp = snapshot.fetched_at or datetime.now(UTC)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _provenance(snapshot: Snapshot, role: str) -> dict[str, Any]:
    return {"role": role, "url": snapshot.url, "final_url": snapshot.final_url, "status": snapshot.status,
            "fetched_at": _fetched_at(snapshot).isoformat(), "render_mode": snapshot.render_mode,
            "headers": snapshot.headers}


def _suffix(snapshot: Snapshot) -> str:
    content_type = str((snapshot.headers or {}).get("content-type", "")).split(";")[0].strip().lower()
    return _SUFFIXES.get(content_type, ".bin")


def _collect(session: Any, doc: Document) -> _Bundle:
    bundle = _Bundle()
    page = session.get(Snapshot, doc.sha256)
    if page is None:
        raise EvidenceError(f"document {doc.id}: no snapshot recorded for {doc.sha256}")
    bundle.add_capture(f"page/{doc.sha256}{_suffix(page)}", _snapshot_bytes(page), page, "page")
    for index, attachment in enumerate((doc.fields or {}).get("attachments", []), start=1):
        snapshot = session.get(Snapshot, attachment.get("sha256", "")) if attachment.get("sha256") else None
        if snapshot is not None:
            suffix = _FORMAT_SUFFIXES.get(attachment.get("format", ""), ".bin")
            bundle.add_capture(f"attachments/{index:02d}-{snapshot.sha256[:16]}{suffix}", _snapshot_bytes(snapshot),
                               snapshot, "attachment", name=attachment.get("name", ""))
    shot = (doc.fields or {}).get("screenshot_sha256")
    if shot and (snapshot := session.get(Snapshot, shot)) is not None:
        bundle.add_capture("screenshot.png", _snapshot_bytes(snapshot), snapshot, "screenshot")
    return bundle


def _extracted(session: Any, doc: Document) -> dict[str, Any]:
    detections = session.scalars(select(Detection).where(Detection.doc_id == doc.id)).all()
    return {"title": doc.title, "kind": doc.kind, "lang": doc.lang, "published": doc.published,
            "encoding": doc.encoding, "process_id": doc.process_id, "fields": doc.fields, "entities": doc.entities,
            "detections": [{"pattern": d.pattern_id, "score": d.score, "flagged": d.flagged, "sentence": d.sentence,
                            "model": d.model_id, "library_version": d.library_version} for d in detections]}


def _build(session: Any, doc: Document) -> tuple[_Bundle, dict[str, Any]]:
    bundle = _collect(session, doc)
    bundle.add("text.txt", doc.text.encode("utf-8"), role="extracted-text")
    bundle.add("extracted.json", json.dumps(_extracted(session, doc), ensure_ascii=False, indent=2,
                                            default=str).encode("utf-8"), role="extracted-fields")
    document = {"id": doc.id, "url": doc.url, "source": doc.source, "sha256": doc.sha256}
    bundle.add(WARC_NAME, write_warc(bundle.captures, WARC_NAME, f"loophole-watch {__version__}",
                                     {"document": document}), role="warc", format="WARC/1.1")
    return bundle, bundle.manifest(document)


def write_bundle(settings: Settings, doc_id: int, out: Path) -> WrittenBundle:
    """Write the bundle for ``doc_id`` to ``out`` (a .zip, written atomically) and record its manifest's
    SHA-256 in the store; the bundle is only put in place once that record is committed."""
    store = Store(settings.db_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with store.session() as session:
            doc = session.get(Document, doc_id)
            if doc is None:
                raise EvidenceError(f"no document with id {doc_id}")
            bundle, manifest = _build(session, doc)
            manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
            digest = hashlib.sha256(manifest_bytes).hexdigest()
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name, data, _ in bundle.files:
                    archive.writestr(name, data)
                archive.writestr(MANIFEST, manifest_bytes)
            session.add(EvidenceBundle(doc_id=doc.id, url=doc.url, manifest_sha256=digest, file_name=out.name))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        store.close()
    return WrittenBundle(out, manifest, digest)


def recorded_manifest(settings: Settings, manifest_sha256: str) -> EvidenceBundle | None:
    """The store's record of a bundle with this manifest hash, if this installation wrote one."""
    store = Store(settings.db_url)
    try:
        with store.session() as session:
            return session.scalar(select(EvidenceBundle).where(EvidenceBundle.manifest_sha256 == manifest_sha256))
    finally:
        store.close()


# --- verification -------------------------------------------------------------------------

class _ManifestFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    path: str = Field(min_length=1, max_length=1000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: str = ""
    url: str | None = None
    status: int | None = None
    fetched_at: str | None = None


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    bundle_version: int = Field(ge=1)
    files: list[_ManifestFile]
    document: dict[str, Any] = {}


@dataclass
class Verification:
    """``problems`` empty: every file matches the manifest and the manifest matches its recorded hash."""

    path: Path
    problems: list[str] = field(default_factory=list)
    manifest_sha256: str = ""
    provenance: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """One line: ``FILE: ok (...)`` or ``FILE: FAILED: reason; reason``."""
        if self.problems:
            return f"{self.path}: FAILED: {'; '.join(self.problems)}"
        return f"{self.path}: ok (manifest SHA-256 {self.manifest_sha256}, {self.provenance})"


Lookup = Callable[[str], EvidenceBundle | None]


def _member_sha256(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(archive: zipfile.ZipFile, names: list[str]) -> tuple[_Manifest, bytes]:
    if MANIFEST not in names:
        raise EvidenceError("no manifest.json: not an evidence bundle")
    if archive.getinfo(MANIFEST).file_size > MAX_MANIFEST_BYTES:
        raise EvidenceError("manifest.json is implausibly large")
    raw = archive.read(MANIFEST)
    try:
        return _Manifest.model_validate(json.loads(raw.decode("utf-8"))), raw
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0][:200]
        raise EvidenceError(f"manifest.json is not a bundle manifest ({first})") from exc


def _check_files(archive: zipfile.ZipFile, names: list[str], manifest: _Manifest) -> list[str]:
    problems = [f"{name}: appears more than once in the zip" for name in sorted({n for n in names
                                                                                 if names.count(n) > 1})]
    listed = [entry.path for entry in manifest.files]
    for entry in manifest.files:
        if entry.path not in names:
            problems.append(f"{entry.path}: missing")
        elif _member_sha256(archive, entry.path) != entry.sha256:
            problems.append(f"{entry.path}: SHA-256 does not match the manifest")
    extra = set(names) - set(listed) - {MANIFEST}
    return problems + [f"{name}: not in the manifest" for name in sorted(extra)]


def _check_warc(archive: zipfile.ZipFile, manifest: _Manifest) -> list[str]:
    """The WARC file reads back with valid digests, its first capture being the manifest's page."""
    entry = next((f for f in manifest.files if f.role == "warc"), None)
    if entry is None:
        return [] if manifest.bundle_version < 2 else [f"{WARC_NAME}: missing from the manifest"]
    records, problems = check_warc(archive.read(entry.path))
    page = next((f for f in manifest.files if f.role == "page"), None)
    captures = [r for r in records if r.type in ("response", "resource")]
    if page is not None and (not captures or captures[0].uri != page.url):
        problems.append(f"{entry.path}: its first capture is not the manifest's page {page.url}")
    return problems


def _check_manifest_hash(result: Verification, lookup: Lookup | None, expected: str | None) -> None:
    if expected is not None:
        if expected.strip().lower() != result.manifest_sha256:
            result.problems.append(f"manifest SHA-256 {result.manifest_sha256} is not the expected {expected}")
        else:
            result.provenance = "matches the hash given"
        return
    record = lookup(result.manifest_sha256) if lookup is not None else None
    if record is None:
        result.problems.append(f"manifest SHA-256 {result.manifest_sha256} is not recorded in this store: the "
                               "manifest was edited, or the bundle was written elsewhere (give the hash printed "
                               "when it was written with --manifest-sha256)")
        return
    written = record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=UTC)
    result.provenance = f"recorded {written:%Y-%m-%d %H:%M} UTC for document {record.doc_id}"


def verify_bundle(path: Path, lookup: Lookup | None = None, expected_sha256: str | None = None) -> Verification:
    """Check every file against the manifest and the manifest against its recorded (or given) hash.

    Any file at all may be handed in (damaged, truncated, foreign, hostile): every way it can
    fail to be a bundle is a problem in the result, never an exception.
    """
    result = Verification(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            manifest, raw = _read_manifest(archive, names)
            result.manifest_sha256 = hashlib.sha256(raw).hexdigest()
            result.problems += _check_files(archive, names, manifest)
            if not result.problems:
                result.problems += _check_warc(archive, manifest)
        _check_manifest_hash(result, lookup, expected_sha256)
    except EvidenceError as exc:
        result.problems.append(str(exc))
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error) as exc:
        result.problems.append(f"not a readable zip archive ({type(exc).__name__}: {exc})")
    except Exception as exc:  # noqa: BLE001 - encrypted, unknown compression, anything: a hostile file ends in FAILED
        result.problems.append(f"cannot be read as a bundle ({type(exc).__name__}: {exc})")
    return result
