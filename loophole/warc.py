"""A document's captured responses as one WARC file (ISO 28500, WARC/1.1), written with warcio.

The evidence bundle keeps the bytes as fetched; the WARC file holds the same captures in the
form web archives use, so standard replay tools (pywb, ReplayWeb.page) open the page as it was
served, and the archive world's own digests (WARC-Block-Digest, WARC-Payload-Digest) cover
every record. Records:

* ``warcinfo``: the tool and the bundle;
* ``response`` for the page fetched over HTTP and for each attachment: status line, headers
  and body. The store keeps bodies decoded (gzip and chunking undone by the crawler), so the
  transfer headers that no longer describe them (Content-Encoding, Transfer-Encoding,
  Content-Length) are replaced by the body's true length; the headers as received are kept,
  unaltered, in the metadata record;
* ``resource`` for a page rendered in Chromium (the DOM as rendered is not what the server
  sent, so it is not dressed as a response) and for its screenshot;
* ``metadata``: the provenance as stored (source, render mode, fetch time, headers as received),
  under its own URI (``urn:loophole-watch:provenance:<page URL>``) and WARC-Concurrent-To the page.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

# Headers describing the transfer, not the body as stored (decoded, whole).
TRANSFER_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


@dataclass
class Capture:
    """One fetched body and what was recorded about its fetch."""

    url: str
    body: bytes
    status: int
    headers: dict[str, str]
    fetched_at: datetime
    render_mode: str = "http"
    role: str = "page"                      # page | attachment | screenshot
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def warc_date(self) -> str:
        stamp = self.fetched_at if self.fetched_at.tzinfo else self.fetched_at.replace(tzinfo=UTC)
        return datetime_to_iso_date(stamp.astimezone(UTC).replace(tzinfo=None), use_micros=True)


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _http_headers(capture: Capture) -> StatusAndHeaders:
    kept = [(name, str(value)) for name, value in capture.headers.items() if name.lower() not in TRANSFER_HEADERS]
    kept.append(("content-length", str(len(capture.body))))
    return StatusAndHeaders(_status_line(capture.status), kept, protocol="HTTP/1.1")


def _record(writer: WARCWriter, capture: Capture) -> Any:
    headers = {"WARC-Date": capture.warc_date}
    if capture.role == "screenshot":
        uri = f"urn:loophole-watch:screenshot:{capture.url}"
        return writer.create_warc_record(uri, "resource", payload=io.BytesIO(capture.body), length=len(capture.body),
                                         warc_content_type="image/png", warc_headers_dict=headers)
    if capture.render_mode == "browser":
        content_type = str(capture.headers.get("content-type") or "text/html")
        return writer.create_warc_record(capture.url, "resource", payload=io.BytesIO(capture.body),
                                         length=len(capture.body), warc_content_type=content_type,
                                         warc_headers_dict=headers)
    return writer.create_warc_record(capture.url, "response", payload=io.BytesIO(capture.body),
                                     length=len(capture.body), http_headers=_http_headers(capture),
                                     warc_headers_dict=headers)


def _metadata(writer: WARCWriter, captures: list[Capture], concurrent_to: str, provenance: dict[str, Any]) -> Any:
    payload = json.dumps({**provenance, "captures": [
        {"role": c.role, "url": c.url, "status": c.status, "fetched_at": c.fetched_at.isoformat(),
         "render_mode": c.render_mode, "headers_as_received": c.headers, **c.extra} for c in captures]},
        ensure_ascii=False, indent=2, default=str).encode("utf-8")
    # Its own URI: under the page's, replay tools (pywb) served this record in place of the page.
    return writer.create_warc_record(f"urn:loophole-watch:provenance:{captures[0].url}", "metadata",
                                     payload=io.BytesIO(payload), length=len(payload),
                                     warc_content_type="application/json",
                                     warc_headers_dict={"WARC-Concurrent-To": concurrent_to,
                                                        "WARC-Date": captures[0].warc_date})


def write_warc(captures: list[Capture], filename: str, software: str, provenance: dict[str, Any]) -> bytes:
    """A gzipped WARC/1.1 file (one gzip member per record, as replay tools expect) of ``captures``,
    the page first."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="WARC/1.1")
    writer.write_record(writer.create_warcinfo_record(filename, {
        "software": software, "format": "WARC File Format 1.1",
        "conformsTo": "https://iso.org/standard/68004.html",
        "description": "Loophole Watch evidence capture: bodies as fetched, decoded; see the metadata record"}))
    records = [_record(writer, capture) for capture in captures]
    for record in records:
        writer.write_record(record)
    page_id = records[0].rec_headers.get_header("WARC-Record-ID")
    writer.write_record(_metadata(writer, captures, page_id, provenance))
    return out.getvalue()


@dataclass
class WarcRecordSummary:
    type: str
    uri: str
    date: str
    status: int | None


def check_warc(data: bytes) -> tuple[list[WarcRecordSummary], list[str]]:
    """Every record read back with its digests checked: (records, problems)."""
    records, problems = [], []
    for record in ArchiveIterator(io.BytesIO(data), check_digests=True):
        record.content_stream().read()   # reading the block is what checks its digests
        uri = record.rec_headers.get_header("WARC-Target-URI") or ""
        status = record.http_headers.get_statuscode() if record.http_headers else None
        records.append(WarcRecordSummary(record.rec_type, uri, record.rec_headers.get_header("WARC-Date") or "",
                                         int(status) if status and str(status).isdigit() else None))
        if record.digest_checker.problems:
            problems += [f"WARC record {uri or record.rec_type}: {p}" for p in record.digest_checker.problems]
    if not records or records[0].type != "warcinfo":
        problems.append("WARC file does not start with a warcinfo record")
    return records, problems
