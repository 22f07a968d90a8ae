"""Text from notice attachments (PDF, DOCX, XLSX, XLS, legacy DOC): many decisive requirements
(GPU models, "deploy on Azure", the end user) are only in the tender documents.

The format is sniffed from the bytes (magic numbers), not trusted from the name or the
Content-Type, since portals serve everything as application/octet-stream. A file that cannot be
read raises :class:`AttachmentError` with the reason; the caller logs it and keeps the notice.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MAX_CHARS = 200_000          # per attachment: a 500-page annex adds noise, not evidence
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class AttachmentError(ValueError):
    """An attachment whose text cannot be extracted; the message says why."""


def sniff_format(body: bytes, name: str = "") -> str:
    """pdf | docx | xlsx | xls | doc | zip | unknown, from the bytes (the name only splits OLE files)."""
    if body[:1024].lstrip().startswith(b"%PDF"):
        return "pdf"
    if body.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(body)).namelist())
        except zipfile.BadZipFile:
            return "unknown"
        if "word/document.xml" in names:
            return "docx"
        return "xlsx" if "xl/workbook.xml" in names else "zip"
    if body.startswith(_OLE):
        return "xls" if name.lower().endswith((".xls", ".et")) else "doc"
    return "unknown"


def _pdf(body: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(body))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def _docx(body: bytes) -> str:
    import docx

    document = docx.Document(io.BytesIO(body))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        parts += [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
    return "\n".join(part for part in parts if part.strip())


def _rows_text(rows: Iterable[Iterable[Any]]) -> str:
    lines = (" | ".join(str(v) for v in row if v not in (None, "")) for row in rows)
    return "\n".join(line for line in lines if line)


def _xlsx(body: bytes) -> str:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    try:
        return "\n".join(_rows_text(sheet.iter_rows(values_only=True)) for sheet in book.worksheets)
    finally:
        book.close()


def _xls(body: bytes) -> str:
    import xlrd

    book = xlrd.open_workbook(file_contents=body)
    return "\n".join(_rows_text(sheet.get_rows()) for sheet in book.sheets())


_UTF16_RUN = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffefA-Za-z0-9 ,.;:()\-/%￥]{6,}")


def _doc(body: bytes) -> str:
    """Best effort for Word 97-2003: its text is stored as UTF-16LE runs inside the OLE file."""
    runs = _UTF16_RUN.findall(body.decode("utf-16-le", errors="ignore"))
    runs += _UTF16_RUN.findall(body[1:].decode("utf-16-le", errors="ignore"))
    return "\n".join(run.strip() for run in runs if re.search(r"[\u4e00-\u9fff]|[A-Za-z]{4}", run))


_READERS: dict[str, Callable[[bytes], str]] = {"pdf": _pdf, "docx": _docx, "xlsx": _xlsx, "xls": _xls, "doc": _doc}


def attachment_text(body: bytes, name: str = "") -> tuple[str, str]:
    """(format, text) of one attachment; raises AttachmentError when it cannot be read."""
    kind = sniff_format(body, name)
    reader = _READERS.get(kind)
    if reader is None:
        raise AttachmentError(f"unsupported format ({kind})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the readers warn about every quirk of malformed files
            text = reader(body)
    except Exception as exc:  # noqa: BLE001 - any parser failure on hostile bytes is "unreadable"
        raise AttachmentError(f"malformed {kind}: {type(exc).__name__}: {exc}") from exc
    text = re.sub(r"[ \t]+", " ", text).strip()
    if not text:
        raise AttachmentError(f"no text in {kind} (scanned image?)")
    return kind, text[:MAX_CHARS]


@dataclass
class SavedAttachment:
    """What the document keeps about an attachment: where it came from, its hash, its text."""

    url: str
    name: str
    sha256: str = ""
    size: int = 0
    format: str = ""
    chars: int = 0
    error: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    fetched_at: Any = None
    text: str = ""

    def record(self) -> dict[str, Any]:
        """The JSON kept in the document's fields (no body, no text)."""
        keys = ("url", "name", "sha256", "size", "format", "chars", "error")
        return {key: getattr(self, key) for key in keys if getattr(self, key) not in ("", None, 0)}


# Stores an attachment's bytes and returns (sha256, path): the caller's snapshot writer, passed in
# so that extraction stays pure (extract/ imports nothing above it; index.snapshots is above).
SnapshotWriter = Callable[[bytes], tuple[str, Path]]


def save_attachments(raw: list[dict[str, Any]], write: SnapshotWriter) -> list[SavedAttachment]:
    """Snapshot each fetched attachment through ``write`` and extract its text; failures are logged, kept."""
    saved = []
    for item in raw:
        entry = SavedAttachment(url=item["url"], name=item.get("name", ""), error=item.get("error", ""))
        body = item.get("body")
        if body is not None:
            entry.sha256, path = write(body)
            entry.size, entry.path = len(body), str(path)
            entry.headers, entry.fetched_at = item.get("headers", {}), item.get("fetched_at")
            try:
                entry.format, entry.text = attachment_text(body, entry.name)
                entry.chars = len(entry.text)
            except AttachmentError as exc:
                entry.error = str(exc)
                log.warning("attachment %s (%s): text not extracted: %s", entry.name, entry.url, exc)
        saved.append(entry)
    return saved


def with_attachment_text(text: str, attachments: list[SavedAttachment]) -> str:
    """The notice text followed by each attachment's text under its file name."""
    parts = [text] + [f"附件 {a.name}:\n{a.text}" for a in attachments if a.text]
    return "\n\n".join(parts)
