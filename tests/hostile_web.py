"""A loopback web server that misbehaves on purpose, one path per behaviour.

Every hostile path is linked from ``/``, next to a few good notices, so a crawl of ``/``
shows that each bad answer is handled and that the good pages still arrive.
"""

from __future__ import annotations

import gzip
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from loophole.webserver import LoopbackHTTPServer, serving

GOOD_TITLES = {
    1: "沅州市公安局视频智能分析平台采购项目公开招标公告",
    2: "沅州市交通局办公设备采购项目竞争性磋商公告",
    3: "沅州市教育局多媒体教室设备采购项目询价公告",
}
NOTICE = ("<p>项目编号：YZ-2026-{n:03d}</p><p>采购人：{buyer}</p><p>预算金额：{n}00.00万元（人民币）</p>"
          "<p>采购需求：设备一批，详见采购文件。供应商资格要求：具有独立承担民事责任的能力。</p>"
          "<p>开标时间：2026年12月{n:02d}日 09:30，地点：沅州市公共资源交易中心。</p>")
GOOD_TEXT = "采购需求：设备一批，详见采购文件。"
TRUNCATED_TEXT = "截断的页面不应被存储"


def notice(n: int, title: str | None = None, meta: str = '<meta charset="utf-8">') -> str:
    title = title or GOOD_TITLES.get(n, f"沅州市第{n}号采购公告")
    body = NOTICE.format(n=n, buyer="沅州市某局")
    return f"<html><head>{meta}<title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"


HOSTILE_PATHS = [
    "/good/1.html", "/good/2.html", "/good/3.html",
    "/malformed.html", "/nested.html", "/gbk-undeclared.html", "/wrong-charset.html",
    "/binary.html", "/huge.html", "/huge-chunked.html", "/gzip-bomb.html",
    "/calendar?month=2026-01", "/list?page=1",
    "/redirect-loop/a", "/offsite-redirect", "/private-links.html",
    "/slow.html", "/trickle.html", "/reset.html", "/truncated.html",
]


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet; requests are recorded in ``server.hits``."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        self.server.hits.append(self.path)
        route = ROUTES.get(path) or ROUTES.get(path.rsplit("/", 1)[0] + "/*")
        try:
            if route is None:
                self._send(404, b"not found", "text/plain")
            else:
                route(self)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the crawler hung up, as it should on a bomb or a hang

    def _send(self, status: int, body: bytes, ctype: str = "text/html", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def html(self, text: str, encoding: str = "utf-8", ctype: str = "text/html") -> None:
        self._send(200, text.encode(encoding), ctype)

    def query(self, name: str, default: str) -> str:
        return parse_qs(urlsplit(self.path).query).get(name, [default])[0]


def _index(h: HostileHandler) -> None:
    links = "".join(f'<li><a href="{p}">{p}</a></li>' for p in HOSTILE_PATHS)
    h.html(f"<html><head><title>Hostile web</title></head><body><ul>{links}</ul></body></html>")


def _good(h: HostileHandler) -> None:
    h.html(notice(int(urlsplit(h.path).path.rsplit("/", 1)[1].split(".")[0])))


def _malformed(h: HostileHandler) -> None:
    page = notice(11).replace("</p>", "").replace("</body></html>", "<table><tr><td><<<&&&;</scr<!--")
    h.html(page)


def _nested(h: HostileHandler) -> None:
    page = notice(12).replace("</body>", "<div>" * 50000 + "深层嵌套" + "</span>" * 10 + "</body>")
    h.html(page)


def _gbk_undeclared(h: HostileHandler) -> None:
    h._send(200, notice(13, meta="").encode("gbk"), "text/html")


def _wrong_charset(h: HostileHandler) -> None:
    h._send(200, notice(14, meta='<meta charset="utf-8">').encode("gb18030"), "text/html; charset=utf-8")


def _binary(h: HostileHandler) -> None:
    h._send(200, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64, "text/html")


def _huge(h: HostileHandler) -> None:
    """Declares 64 MiB and starts sending it: Scrapy cancels on the declared size."""
    size = 64 * 1024 * 1024
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(size))
    h.end_headers()
    block = b"<p>" + b"x" * 65530 + b"</p>"
    for _ in range(size // len(block)):
        h.wfile.write(block)


def _huge_chunked(h: HostileHandler) -> None:
    """No length at all, then an endless body: Scrapy cancels once the received size passes the cap."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    block = b"<p>" + b"y" * 65530 + b"</p>"
    for _ in range(1024):
        h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
    h.wfile.write(b"0\r\n\r\n")


def _gzip_bomb(h: HostileHandler) -> None:
    h._send(200, h.server.bomb, "text/html", Content_Encoding="gzip")


def _calendar(h: HostileHandler) -> None:
    """Every month links to the next one, forever."""
    year, month = (int(part) for part in h.query("month", "2026-01").split("-"))
    following = f"{year + month // 12}-{month % 12 + 1:02d}"
    h.html(f"<html><head><title>日历 {year}-{month:02d}</title></head><body><p>{GOOD_TEXT * 3}</p>"
           f'<a href="/calendar?month={following}">下一月</a></body></html>')


def _listing(h: HostileHandler) -> None:
    """An endless "next page" (and every page claims another hundred pages after it)."""
    page = int(h.query("page", "1"))
    h.html(f"<html><head><title>公告列表 第{page}页</title></head><body><p>{GOOD_TEXT * 3}</p>"
           f'<a href="/list?page={page + 1}">下一页</a></body></html>')


def _redirect_loop(h: HostileHandler) -> None:
    target = "/redirect-loop/b" if h.path.endswith("/a") else "/redirect-loop/a"
    h._send(302, b"", Location=target)


def _offsite_redirect(h: HostileHandler) -> None:
    h._send(302, b"", Location="http://offsite.invalid/stolen.html")


def _private_links(h: HostileHandler) -> None:
    links = [f"http://127.0.0.2:{h.server.private_port}/secret.html", "http://169.254.169.254/latest/meta-data/",
             "http://10.255.255.1/admin", f"http://localhost:{h.server.server_address[1]}/good/1.html"]
    anchors = "".join(f'<a href="{link}">{link}</a> ' for link in links)
    h.html(f"<html><head><title>Links inward</title></head><body><p>{GOOD_TEXT * 3}</p>{anchors}</body></html>")


def _slow(h: HostileHandler) -> None:
    """No answer within any sane timeout."""
    time.sleep(h.server.hang_seconds)
    h.html(notice(15))


def _trickle(h: HostileHandler) -> None:
    """Headers at once, then one byte a second: only a total download timeout ends it."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    deadline = time.monotonic() + h.server.hang_seconds
    while time.monotonic() < deadline:
        h.wfile.write(b" ")
        h.wfile.flush()
        time.sleep(0.5)


def _reset(h: HostileHandler) -> None:
    """A TCP reset instead of an answer."""
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()
    h.close_connection = True


def _truncated(h: HostileHandler) -> None:
    """Content-Length promises more than is sent, then the connection closes."""
    body = notice(16, title=TRUNCATED_TEXT).encode("utf-8")
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(body) * 4))
    h.end_headers()
    h.wfile.write(body)
    h.wfile.flush()
    h.close_connection = True


def _secret(h: HostileHandler) -> None:
    h.html(notice(17, title="内网页面不应被抓取"))


ROUTES: dict[str, Callable[[HostileHandler], None]] = {
    "/": _index, "/index.html": _index, "/good/*": _good, "/malformed.html": _malformed, "/nested.html": _nested,
    "/gbk-undeclared.html": _gbk_undeclared, "/wrong-charset.html": _wrong_charset, "/binary.html": _binary,
    "/huge.html": _huge, "/huge-chunked.html": _huge_chunked, "/gzip-bomb.html": _gzip_bomb,
    "/calendar": _calendar, "/list": _listing, "/redirect-loop/*": _redirect_loop,
    "/offsite-redirect": _offsite_redirect, "/private-links.html": _private_links, "/slow.html": _slow,
    "/trickle.html": _trickle, "/reset.html": _reset, "/truncated.html": _truncated, "/secret.html": _secret,
}


class HostileServer(LoopbackHTTPServer):
    hits: list[str]
    bomb: bytes
    hang_seconds: float
    private_port: int

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients hanging up mid-request is the normal case here."""


def gzip_bomb(decompressed_mib: int = 64) -> bytes:
    """About 64 KiB on the wire, 64 MiB once inflated."""
    return gzip.compress(b"\0" * (decompressed_mib * 1024 * 1024), compresslevel=9)


@contextmanager
def serve_hostile(host: str = "127.0.0.1", hang_seconds: float = 8.0, private_port: int = 0) -> Iterator[HostileServer]:
    server = HostileServer((host, 0), HostileHandler)
    server.hits, server.bomb, server.hang_seconds, server.private_port = [], gzip_bomb(), hang_seconds, private_port
    with serving(server, f"hostile-web-{host}"):
        yield server


def base_url(server: HostileServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
