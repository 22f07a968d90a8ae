"""Property-based tests (hypothesis) on everything that parses input someone else wrote.

Each property is the contract the rest of the chain relies on: decoding never raises,
extraction either returns a page or raises UnusableContent, field parsing never raises and
returns sane numbers, chunks are never empty and lose no text, a pattern or configuration file
either loads or raises ConfigError, and no string reaches a snapshot path. Example counts are
modest so the file runs in well under 30 s.
"""

from __future__ import annotations

import codecs
import re
import tempfile
from datetime import date
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract import UnusableContent, extract_page, looks_binary
from extract.charset import declared_charset, decode_html, normalise_label
from extract.fields import parse_procurement_fields
from extract.page import normalise_date
from ground.config import ConfigError, load_settings
from index.chunking import MAX_CHARS, MIN_CHARS, chunk_document
from index.patterns import load_pattern_file
from index.snapshots import snapshot_path

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
TEXTISH = st.text(st.one_of(CJK, st.characters(codec="utf-8", exclude_categories=("Cs",)),
                            st.sampled_from("：:；;。.,，|\n 0123456789万元亿元¥$")), max_size=400)
TAGS = st.sampled_from(["<p>", "</p>", "<div>", "</div>", "<table><tr><td>", "</td></tr></table>", "<title>",
                        "</title>", "<meta charset=\"gb2312\">", "<meta charset=utf-8>", "<script>", "</script>",
                        "<!--", "-->", "<![CDATA[", "<br>", "&amp;", "&#0;", "&#x110000;", "<", ">", "\"", "'"])
HTMLISH = st.lists(st.one_of(TAGS, TEXTISH), max_size=40).map("".join)
ENCODINGS = st.sampled_from(["utf-8", "gb18030", "gbk", "big5", "utf-16", "latin-1", "shift_jis"])


@FAST
@given(body=st.binary(max_size=4000), content_type=st.one_of(st.none(), st.text(max_size=60)))
def test_decode_never_raises_on_any_bytes(body: bytes, content_type: str | None) -> None:
    text, codec = decode_html(body, content_type)
    assert isinstance(text, str)
    codecs.lookup(codec)


@FAST
@given(label=st.text(max_size=40))
def test_charset_labels_never_raise(label: str) -> None:
    normalised = normalise_label(label)
    assert normalised is None or codecs.lookup(normalised)
    declared_charset(f"<meta charset={label}>".encode("utf-8", "replace"), f"text/html; charset={label}")


@FAST
@given(text=HTMLISH, encoding=ENCODINGS)
def test_declared_or_not_the_text_comes_back(text: str, encoding: str) -> None:
    """Whatever the encoding, a page's own characters decode back (when they can be encoded at all)."""
    try:
        body = text.encode(encoding)
    except UnicodeEncodeError:
        return
    decoded, _ = decode_html(body if encoding != "utf-16" else codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    if encoding in ("utf-8", "utf-16"):
        assert decoded.lstrip("\ufeff") == text


@SLOW
@given(html=HTMLISH, encoding=ENCODINGS, url=st.sampled_from(["", "http://127.0.0.1/cggg/a.htm", "file:///x"]))
def test_extraction_returns_a_page_or_says_why(html: str, encoding: str, url: str) -> None:
    body = html.encode(encoding, errors="replace")
    try:
        page = extract_page(body, url)
    except UnusableContent as exc:
        assert str(exc)
        return
    assert isinstance(page.text, str) and isinstance(page.title, str)
    assert page.date is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", page.date)


@FAST
@given(text=st.text(max_size=2000))
def test_utf16_text_is_not_taken_for_binary(text: str) -> None:
    assume_text = "".join(ch for ch in text if ch.isprintable() or ch in "\n\t")
    assert not looks_binary(assume_text.encode("utf-8"))
    assert not looks_binary(codecs.BOM_UTF16_LE + assume_text.encode("utf-16-le", "surrogatepass"))


@FAST
@given(text=TEXTISH, title=st.text(max_size=60))
def test_procurement_fields_never_raise_and_amounts_are_sane(text: str, title: str) -> None:
    fields = parse_procurement_fields(text, title)
    assert len(fields.amounts) <= 10 and len(fields.suppliers) <= 5
    assert all(amount.amount >= 0 and amount.currency in ("CNY", "USD", "HKD") for amount in fields.amounts)
    fields.as_dict()


@FAST
@given(value=st.one_of(st.none(), st.text(max_size=40),
                       st.tuples(st.integers(1900, 2099), st.integers(0, 99), st.integers(0, 99))
                       .map(lambda t: f"{t[0]}年{t[1]}月{t[2]}日")))
def test_dates_are_valid_or_none(value: str | None) -> None:
    result = normalise_date(value)
    if result is not None:
        year, month, day = (int(part) for part in result.split("-"))
        assert 1 <= month <= 12 and 1 <= day <= 31 and 1900 <= year <= 2099


@FAST
@given(text=TEXTISH)
def test_chunks_are_never_empty_and_lose_no_text(text: str) -> None:
    chunks = chunk_document("", text)
    assert all(chunk.strip() for chunk in chunks)
    assert all(len(chunk) <= MAX_CHARS + MIN_CHARS + 1 for chunk in chunks)
    kept = set("".join(chunks))
    assert set(text) - set("|；") - {c for c in text if c.isspace()} <= kept


PATTERN_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                              lambda children: st.lists(children, max_size=3)
                              | st.dictionaries(st.sampled_from(["id", "title", "description", "examples",
                                                                 "keywords", "requires", "threshold", "x"]),
                                                children, max_size=5), max_leaves=15)


@FAST
@given(data=st.one_of(st.dictionaries(st.sampled_from(["version", "patterns", "extra"]), PATTERN_VALUES, max_size=3),
                      PATTERN_VALUES),
       raw=st.one_of(st.none(), st.text(max_size=200)))
def test_pattern_files_load_or_raise_config_error(data: object, raw: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "patterns.yaml"
        path.write_text(raw if raw is not None else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        try:
            load_pattern_file(path)
        except ConfigError as exc:
            assert str(path) in str(exc)


@FAST
@given(data=st.dictionaries(st.sampled_from(["crawl", "smtp", "embedding", "digest", "home", "nonsense"]),
                            PATTERN_VALUES, max_size=3))
def test_configuration_loads_or_raises_config_error(data: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        try:
            load_settings(path, home=Path(folder))
        except ConfigError as exc:
            assert str(path) in str(exc)


@FAST
@given(name=st.one_of(st.text(max_size=80), st.sampled_from(["../../etc/passwd", "..", "/etc/passwd", "a" * 64,
                                                             "../" + "0" * 61, "0" * 63 + "/"])))
def test_no_string_reaches_a_snapshot_path_outside_its_root(name: str) -> None:
    root = Path("/srv/snapshots")
    try:
        path = snapshot_path(root, name)
    except ValueError:
        return
    assert path.resolve().is_relative_to(root) and re.fullmatch(r"[0-9a-f]{64}\.bin", path.name)


def test_dates_sample_today() -> None:
    assert normalise_date(f"{date.today():%Y年%m月%d日}") == date.today().isoformat()
