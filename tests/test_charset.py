"""Charset cases seen on PRC portals: decode from bytes, whatever the page declares."""

from __future__ import annotations

import pytest

from extract.charset import decode_html
from extract.guards import looks_binary

NOTICE = "<p>采购人：沅州市公安局 预算金额：120万元 项目编号：YZ-2026-001 ©</p>"


def page(charset_meta: str, body: str = NOTICE) -> str:
    return f"<html><head>{charset_meta}<title>公告</title></head><body>{body}</body></html>"


@pytest.mark.parametrize(
    ("meta", "encoding", "expected"),
    [
        ('<meta charset="gbk">', "gbk", "gb18030"),
        ('<meta http-equiv="Content-Type" content="text/html; charset=gb2312">', "gbk", "gb18030"),
        ('<meta charset="gb2312">', "utf-8", "utf-8"),          # declares gb2312, bytes are UTF-8
        ('<meta charset="utf-8">', "gb18030", "gb18030"),       # declares UTF-8, bytes are GBK
        ("", "gb18030", "gb18030"),                             # declares nothing
        ('<meta charset="utf-8">', "utf-8", "utf-8"),
    ],
)
def test_decodes_what_the_bytes_are(meta: str, encoding: str, expected: str) -> None:
    body = page(meta, NOTICE.replace("©", "&copy;") if encoding == "gbk" else NOTICE).encode(encoding)
    text, used = decode_html(body)
    assert "沅州市公安局" in text and "预算金额" in text
    assert used == expected


def test_http_header_charset_is_used() -> None:
    body = page("").encode("gb18030")
    text, used = decode_html(body, "text/html; charset=GB2312")
    assert "沅州市公安局" in text and used == "gb18030"


def test_gb18030_only_characters_survive() -> None:
    body = page('<meta charset="gb2312">', "<p>采购人：㐀㐁 研究所 𠀀 预算金额</p>").encode("gb18030")
    text, _ = decode_html(body)
    assert "㐀㐁" in text and "𠀀" in text


def test_utf8_bom() -> None:
    text, used = decode_html(b"\xef\xbb\xbf" + page("").encode("utf-8"))
    assert used == "utf-8-sig" and "沅州市" in text


@pytest.mark.parametrize("body", [b"%PDF-1.7\n...", b"\x89PNG\r\n\x1a\n\x00\x00", b"\x00\x01\x02" * 500])
def test_binary_is_recognised(body: bytes) -> None:
    assert looks_binary(body)


def test_html_is_not_binary() -> None:
    assert not looks_binary(page("").encode("utf-8"))
