"""Evidence bundles: provenance covered by the integrity check, captures as WARC, and `--verify`
that ends every damaged or foreign file in one FAILED line, never a traceback.

Before: the manifest (the only file naming URL, fetch time, status and headers) could be edited
freely, since only the files it lists were checked; a corrupted zip raised a traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner
from warcio.archiveiterator import ArchiveIterator

from ground.config import Settings
from index.snapshots import write_snapshot
from index.store import Document, Snapshot, Store
from loophole.cli import app
from loophole.evidence import verify_bundle

URL = "http://www.ccgp.gov.cn/cggg/dfgg/gkzb/202611/t20261101_100.htm"
PAGE = "<html><head><meta charset='gbk'><title>公安局GPU云算力采购</title></head><body>采购NVIDIA A100</body></html>"
FETCHED = datetime(2026, 11, 1, 8, 30, 15, 250000, tzinfo=UTC)
HEADERS = {"content-type": "text/html; charset=GBK", "content-encoding": "gzip", "content-length": "61",
           "server": "nginx", "date": "Sun, 01 Nov 2026 08:30:15 GMT"}


def _document(settings: Settings) -> int:
    """A stored page as the pipeline leaves it: the bytes as fetched, decoded from gzip by the crawler."""
    settings.ensure_dirs()
    body = PAGE.encode("gbk")
    sha, path = write_snapshot(settings.snapshot_dir, body)
    store = Store(settings.db_url)
    with store.session() as session:
        session.add(Snapshot(sha256=sha, url=URL, final_url=URL, status=200, headers=HEADERS, fetched_at=FETCHED,
                             size=len(body), path=str(path), source="ccgp"))
        doc = Document(url=URL, source="ccgp", sha256=sha, title="公安局GPU云算力采购", text="采购NVIDIA A100",
                       lang="zh", kind="procurement-notice", fields={"buyer": "某市公安局"}, entities=[])
        session.add(doc)
        session.flush()
        doc_id = doc.id
    store.close()
    return doc_id


@pytest.fixture
def bundle(settings: Settings, tmp_path: Path) -> tuple[Path, str]:
    """A bundle written through the command line, and the manifest hash it printed."""
    doc_id = _document(settings)
    target = tmp_path / "evidence.zip"
    result = CliRunner().invoke(app, ["evidence", str(doc_id), "--out", str(target)])
    assert result.exit_code == 0, result.output
    printed = result.output.split("manifest SHA-256 ")[1].split(",")[0]
    with zipfile.ZipFile(target) as archive:
        assert hashlib.sha256(archive.read("manifest.json")).hexdigest() == printed
    return target, printed


def verify(path: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["evidence", "--verify", str(path), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _rewrite(source: Path, target: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of the zip with members replaced (or dropped, for None)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = change.get(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return target


def test_bundle_verifies_and_names_its_recorded_manifest(bundle: tuple[Path, str]) -> None:
    path, printed = bundle
    code, output = verify(path)
    assert code == 0 and output.count("\n") == 1
    assert output.startswith(f"{path}: ok (manifest SHA-256 {printed}, recorded ") and "for document 1" in output
    # On a machine without this store, the hash printed at capture time is the reference.
    assert verify(path, "--manifest-sha256", printed)[0] == 0
    code, output = verify(path, "--manifest-sha256", "0" * 64)
    assert code == 1 and "is not the expected" in output


def test_an_edited_manifest_fails_even_with_every_file_hash_intact(bundle: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = bundle
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    page = next(f for f in manifest["files"] if f["role"] == "page")
    page["url"], page["fetched_at"] = "http://www.ccgp.gov.cn/another-notice.htm", "2026-12-24T00:00:00+00:00"
    edited = _rewrite(path, tmp_path / "edited.zip", {"manifest.json": json.dumps(manifest).encode()})
    code, output = verify(edited)
    assert code == 1 and output.count("\n") == 1
    assert output.startswith(f"{edited}: FAILED: ") and "manifest SHA-256" in output
    assert "is not recorded in this store" in output
    assert "first capture is not the manifest's page http://www.ccgp.gov.cn/another-notice.htm" in output


def test_the_capture_is_a_warc_record_that_standard_tools_read(bundle: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = bundle
    with zipfile.ZipFile(path) as archive:
        warc = archive.read("capture.warc.gz")
    (tmp_path / "capture.warc.gz").write_bytes(warc)
    assert [r.rec_type for r in ArchiveIterator(io.BytesIO(warc))] == ["warcinfo", "response", "metadata"]
    response = next(r for r in ArchiveIterator(io.BytesIO(warc)) if r.rec_type == "response")
    assert response.rec_headers.get_header("WARC-Target-URI") == URL
    assert response.rec_headers.get_header("WARC-Date") == "2026-11-01T08:30:15.250000Z"
    assert response.http_headers.get_statuscode() == "200"
    assert response.http_headers.get_header("Content-Type") == "text/html; charset=GBK"
    assert response.http_headers.get_header("Content-Encoding") is None   # the body is stored decoded
    assert response.content_stream().read() == PAGE.encode("gbk")
    # One gzip member per record (what replay tools seek to), and warcio's own checker and indexer agree.
    assert gzip.decompress(warc).startswith(b"WARC/1.1\r\n")
    warcio = [sys.executable, "-c", "import sys; from warcio.cli import main; sys.exit(main())"]
    checked = subprocess.run([*warcio, "check", "-v", str(tmp_path / "capture.warc.gz")], capture_output=True, text=True)
    assert checked.returncode == 0 and "digest pass" in checked.stdout, checked.stdout + checked.stderr
    index = subprocess.run([*warcio, "index", "-f", "warc-type,warc-target-uri,http:status,offset",
                            str(tmp_path / "capture.warc.gz")], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in index.stdout.splitlines()]
    assert {"warc-type": "response", "warc-target-uri": URL, "http:status": "200"}.items() <= rows[1].items()


HOSTILE_FILES = {
    "empty": b"",
    "text": b"not a zip at all\n",
    "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    "zip without manifest": None,
    "manifest not json": None,
    "manifest a list": None,
    "manifest wrong types": None,
    "truncated": None,
    "corrupted member": None,
}


def _hostile(name: str, good: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"{name.replace(' ', '-')}.zip"
    raw = HOSTILE_FILES.get(name)
    if raw is not None:
        target.write_bytes(raw)
    elif name == "zip without manifest":
        _rewrite(good, target, {"manifest.json": None})
    elif name.startswith("manifest "):
        manifest = {"not json": b"\xff{{{", "a list": b"[1, 2]",
                    "wrong types": json.dumps({"bundle_version": "x", "files": [{"path": 3}]}).encode()}
        _rewrite(good, target, {"manifest.json": manifest[name.removeprefix("manifest ")]})
    elif name == "truncated":
        target.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:   # one byte of the stored page changed inside the compressed stream: CRC or inflate error
        data = bytearray(good.read_bytes())
        data[60] ^= 0xFF
        target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("name", [*HOSTILE_FILES, "directory", "no such file"])
def test_any_damaged_or_foreign_file_is_one_failed_line(name: str, bundle: tuple[Path, str], tmp_path: Path) -> None:
    good, _ = bundle
    if name == "directory":
        target = tmp_path
    elif name == "no such file":
        target = tmp_path / "missing.zip"
    else:
        target = _hostile(name, good, tmp_path)
    code, output = verify(target)
    assert code == 1 and output.count("\n") == 1 and output.startswith(f"{target}: FAILED: "), output
    assert "Traceback" not in output


def test_a_changed_page_fails_with_its_name(bundle: tuple[Path, str], tmp_path: Path) -> None:
    good, _ = bundle
    with zipfile.ZipFile(good) as archive:
        page = next(n for n in archive.namelist() if n.startswith("page/"))
    code, output = verify(_rewrite(good, tmp_path / "edited.zip", {page: b"<html>edited</html>"}))
    assert code == 1 and f"{page}: SHA-256 does not match the manifest" in output


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_byte_damage_anywhere_never_raises(bundle: tuple[Path, str], tmp_path: Path, data: st.DataObject) -> None:
    good, printed = bundle
    raw = bytearray(good.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(len(raw) // 2, len(raw)))
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw[:cut]))
    result = verify_bundle(damaged, None, printed)
    assert "\n" not in result.line()
    if result.ok:   # damage in bytes nothing reads (the zip's comment or padding) changes no evidence
        with zipfile.ZipFile(damaged) as a, zipfile.ZipFile(good) as b:
            assert all(a.read(n) == b.read(n) for n in b.namelist())
