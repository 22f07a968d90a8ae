"""Versions of the restriction lists in the store, and the parties of documents screened against them.

``loophole lists update FILE...`` reads every file first (index.lists); one bad file refuses
the whole batch and the lists in force stay as they were. A good batch becomes a new version
(older ones are kept, with their entries), and every stored document's parties are screened
again, so a party added to or removed from a list changes the flags on notices already seen.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from index.lists import AliasItem, ListedEntry, apply_aliases, read_list_file
from index.screening import LISTED, Encoder, Match, Screener, Thresholds
from index.store import Document, ListEntry, ListVersion, PartyMatch, Store

log = logging.getLogger(__name__)
ROLES = ("buyer", "agency", "supplier", "vendor")
_MAX_PARTY_CHARS = 120


@dataclass
class LoadReport:
    version: int
    entries: int
    files: list[dict[str, Any]]
    unknown_aliases: list[str] = field(default_factory=list)
    documents: int = 0            # documents screened again
    flagged: int = 0              # of which with a listed party


def read_batch(paths: Iterable[Path]) -> tuple[list[ListedEntry], list[dict[str, Any]], list[str]]:
    """Entries of every file (aliases applied), what each file held, and aliases naming no entry.
    Raises index.lists.ListFileError on the first bad file, before anything is stored."""
    entries: list[ListedEntry] = []
    aliases: list[AliasItem] = []
    files = []
    for path in paths:
        fmt, items = read_list_file(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        files.append({"file": str(path), "sha256": digest, "format": fmt, "entries": len(items)})
        if fmt == "aliases":
            aliases.extend(items)  # type: ignore[arg-type]
        else:
            entries.extend(items)  # type: ignore[arg-type]
    unknown = apply_aliases(entries, aliases)
    return entries, files, [a.entry for a in unknown]


def save_version(store: Store, entries: list[ListedEntry], files: list[dict[str, Any]]) -> int:
    with store.session() as session:
        version = ListVersion(files=files, entry_count=len(entries))
        session.add(version)
        session.flush()
        session.add_all(ListEntry(version_id=version.id, key=e.key, list_code=e.list_code, record=asdict(e))
                        for e in entries)
        return version.id


def active_version(store: Store) -> int | None:
    """The lists in force: the latest version loaded."""
    with store.session() as session:
        return session.scalar(select(func.max(ListVersion.id)))


def version_entries(store: Store, version_id: int) -> list[ListedEntry]:
    with store.session() as session:
        rows = session.scalars(select(ListEntry.record).where(ListEntry.version_id == version_id)
                               .order_by(ListEntry.id))
        return [ListedEntry(**record) for record in rows]


def versions(store: Store) -> list[dict[str, Any]]:
    with store.session() as session:
        return [{"version": v.id, "loaded_at": v.loaded_at.isoformat(), "entries": v.entry_count, "files": v.files}
                for v in session.scalars(select(ListVersion).order_by(ListVersion.id))]


def screener_for(store: Store, encoder: Encoder | None, thresholds: Thresholds) -> Screener | None:
    """A screener over the lists in force, or None when no list was ever loaded."""
    version = active_version(store)
    if version is None:
        return None
    return Screener(version_entries(store, version), encoder, thresholds, version)


def parties(fields: dict[str, Any], entities: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, name) of every party the extractor found: buyer, agency, suppliers (also from the
    item tables) and the watchlist's vendors."""
    found = [("buyer", fields.get("buyer")), ("agency", fields.get("agency"))]
    found += [("supplier", name) for name in fields.get("suppliers") or []]
    found += [("supplier", item.get("supplier")) for item in fields.get("items") or [] if isinstance(item, dict)]
    found += [("vendor", e.get("name")) for e in entities if e.get("type") == "sanctioned-vendor"]
    cleaned = [(role, str(name).strip()) for role, name in found if name and isinstance(name, str)]
    return list(dict.fromkeys((role, name) for role, name in cleaned if len(name) <= _MAX_PARTY_CHARS))


def _rows(doc_id: int, version: int, doc_parties: list[tuple[str, str]],
          found: dict[str, list[Match]]) -> Iterator[PartyMatch]:
    for role, name in doc_parties:
        for m in found.get(name, []):
            yield PartyMatch(doc_id=doc_id, version_id=version, role=role, party=name, list_code=m.list,
                             list_name=m.list_name, entry_key=m.entry_key, entry_name=m.entry_name,
                             matched_name=m.matched_name, method=m.method, score=m.score, strength=m.strength)


def record_matches(session: Session, screener: Screener, docs: list[tuple[int, list[tuple[str, str]]]]) -> int:
    """Replace the documents' party matches with the screener's; returns how many have a listed party."""
    found = screener.screen_many(name for _, doc_parties in docs for _, name in doc_parties)
    ids = [doc_id for doc_id, _ in docs]
    session.execute(delete(PartyMatch).where(PartyMatch.doc_id.in_(ids)))
    flagged = 0
    for doc_id, doc_parties in docs:
        rows = list(_rows(doc_id, screener.version or 0, doc_parties, found))
        session.add_all(rows)
        flagged += any(row.strength == LISTED for row in rows)
    return flagged


def screen_all(store: Store, screener: Screener, batch: int = 500) -> tuple[int, int]:
    """Screen every stored document's parties again: (documents, documents with a listed party)."""
    with store.session() as session:
        ids = list(session.scalars(select(Document.id).order_by(Document.id)))
    flagged = 0
    for start in range(0, len(ids), batch):
        with store.session() as session:
            rows = session.execute(select(Document.id, Document.fields, Document.entities)
                                   .where(Document.id.in_(ids[start:start + batch]))).all()
            docs = [(row.id, parties(row.fields or {}, row.entities or [])) for row in rows]
            flagged += record_matches(session, screener, docs)
    return len(ids), flagged


def update_lists(store: Store, paths: list[Path], encoder: Encoder | None, thresholds: Thresholds) -> LoadReport:
    """Load a batch of list files as a new version and screen every document against it."""
    entries, files, unknown = read_batch(paths)
    version = save_version(store, entries, files)
    screener = Screener(entries, encoder, thresholds, version)
    documents, flagged = screen_all(store, screener)
    log.info("lists version %d: %d entries; %d documents screened, %d with a listed party",
             version, len(entries), documents, flagged)
    return LoadReport(version, len(entries), files, unknown, documents, flagged)


def matches_for(session: Session, doc_ids: Iterable[int]) -> dict[int, list[PartyMatch]]:
    """Each document's party matches, listed before possible, best score first."""
    ids = list(doc_ids)
    found: dict[int, list[PartyMatch]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        query = select(PartyMatch).where(PartyMatch.doc_id.in_(ids[start:start + 500]))
        for row in session.scalars(query):
            found[row.doc_id].append(row)
    for rows in found.values():
        rows.sort(key=lambda r: (r.strength != LISTED, -r.score, r.id))
    return found


def match_dict(row: PartyMatch) -> dict[str, Any]:
    """A party match as the API, the export and the CLI show it."""
    return {"role": row.role, "party": row.party, "list": row.list_code, "list_name": row.list_name,
            "entry_key": row.entry_key, "entry_name": row.entry_name, "matched_name": row.matched_name,
            "method": row.method, "score": round(row.score, 4), "strength": row.strength,
            "lists_version": row.version_id}
