"""Load on the web search endpoint: many concurrent API clients against ``loophole serve``.

The server runs as ``loophole serve`` in its own process, exactly as deployed, so the clients'
event loop neither shares its GIL nor flatters it. The clients share one ``aiohttp`` session
(a connection each), hold a bearer token (the API's normal use) and ask one query after
another, Chinese and English mixed, for a fixed time. Any non-2xx answer and any exception
(timeout, reset) is an error. The first search loads the embedding model, so one warm-up
request is made before the clock starts.

Why aiohttp: the load runs on the same two cores as the server, and with ``httpx`` the clients
spent 3-5 ms of CPU per request against the server's 1, so the figure measured the clients.
aiohttp's C parser costs them about 0.2 ms. With ``distinct=True`` every request's query is one
never asked before (a counter appended), so no cache helps: the model embeds every query.

Used by ``make bench`` (stage ``web-search``), by tests/test_web_load.py, and by hand:
``python -m tests.bench.loadtest --home DATA_DIR --clients 50 --seconds 60 [--distinct]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from ground.config import child_environment
from tests.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
REQUEST_TIMEOUT = 60.0      # seconds; longer than any queue the server should build
START_TIMEOUT = 180.0       # seconds for the server to listen and answer the warm-up search
QUERIES = (
    "海康威视 Azure 视频云", "人脸识别 云服务器 采购", "GPU cloud servers rented by a university",
    "NVIDIA A100 算力租赁", "视频结构化分析服务器", "Hikvision on Microsoft Azure", "公安局 人工智能 平台",
    "p4d.24xlarge", "境外数据中心 部署", "AWS 中国区域 客户", "surveillance vendor on US cloud",
    "云计算 服务 中标公告", "export controlled chips through cloud rental", "车辆识别 推理加速卡",
    "预算金额 万元 采购需求", "data center in Tokyo leased by a Chinese company", "阿里云 Google Cloud 合作",
    "facial recognition platform procurement", "智算中心 H100", "university supercomputing cloud access",
    "东京 数据中心", "cloud GPU rental for model training", "监控 视频 云存储", "Azure OpenAI 服务 国内",
)


@dataclass
class LoadResult:
    """Latencies of the answered requests and what went wrong with the others."""

    clients: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    server_cpu_seconds: float | None = None    # over the timed part, when the server's process is known

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_request_ms(self) -> float:
        """The server's CPU time per answered request: a busy machine moves it far less than latency."""
        if self.server_cpu_seconds is None or not self.latencies_ms:
            return float("nan")
        return self.server_cpu_seconds * 1000 / len(self.latencies_ms)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(what)

    def summary(self) -> str:
        return (f"{self.clients} clients, {self.seconds:.1f} s: {self.requests} requests, {self.errors} errors, "
                f"{self.rate:.1f} req/s, p50 {self.percentile(50):.0f} ms, p95 {self.percentile(95):.0f} ms, "
                f"p99 {self.percentile(99):.0f} ms, server CPU {self.cpu_per_request_ms:.1f} ms/request")


@dataclass
class Served:
    """A running ``loophole serve``: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(home: Path) -> Iterator[Served]:
    """``loophole serve`` on a free loopback port over the data directory ``home``."""
    port = free_port()
    env = child_environment(LOOPHOLE_HOME=str(home), PYTHONPATH=str(ROOT))
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, "-m", "loophole.cli", "serve", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=log)
        try:
            if not wait_for_port(port, timeout=START_TIMEOUT, alive=lambda: server.poll() is None):
                log.seek(0)
                raise RuntimeError(f"loophole serve did not start:\n{log.read().decode(errors='replace')[-2000:]}")
            yield Served(f"http://127.0.0.1:{port}", server)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


async def _client(http: aiohttp.ClientSession, number: int, queries: Sequence[str], stop: float,
                  result: LoadResult, distinct: bool) -> None:
    turn = number
    while time.monotonic() < stop:
        query = queries[turn % len(queries)] + (f" {number}-{turn}" if distinct else "")
        turn += 1
        start = time.perf_counter()
        try:
            async with http.get("/api/search", params={"q": query, "per_page": "10"}) as answer:
                body = await answer.read()
        except Exception as exc:  # noqa: BLE001 - every failure counts as an error, whatever it is
            result.fail(f"{type(exc).__name__}: {exc!r} (cause {exc.__cause__!r}) after "
                        f"{time.perf_counter() - start:.2f} s, {stop - time.monotonic():.1f} s before the end")
            continue
        if 200 <= answer.status < 300:
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
        else:
            result.fail(f"HTTP {answer.status}: {body[:200].decode(errors='replace')}")


async def _load(base_url: str, token: str, clients: int, seconds: float, queries: Sequence[str],
                cpu: Callable[[], float] | None, distinct: bool) -> LoadResult:
    result = LoadResult(clients)
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get("/api/search", params={"q": queries[0]},
                            timeout=aiohttp.ClientTimeout(total=START_TIMEOUT)) as warm:
            warm.raise_for_status()
            await warm.read()
        started, cpu_before = time.monotonic(), cpu() if cpu else 0.0
        await asyncio.gather(*(_client(http, n, queries, started + seconds, result, distinct)
                               for n in range(clients)))
        result.seconds = time.monotonic() - started
        if cpu:
            result.server_cpu_seconds = cpu() - cpu_before
    return result


def run_load(base_url: str, token: str, clients: int = 50, seconds: float = 60.0,
             queries: Sequence[str] = QUERIES, cpu: Callable[[], float] | None = None,
             distinct: bool = False) -> LoadResult:
    """``clients`` concurrent clients searching for ``seconds`` (after one warm-up search);
    ``cpu`` (the server's CPU seconds so far) is read before and after the timed part;
    ``distinct``: no query is asked twice."""
    return asyncio.run(_load(base_url, token, clients, seconds, queries, cpu, distinct))


def load_test(home: Path, clients: int = 50, seconds: float = 60.0, distinct: bool = False) -> LoadResult:
    """Serve ``home`` (a data directory with indexed pages) and run the load as a viewer made for it."""
    from ground.config import load_settings
    from index.store import Store
    from web.auth import add_user, remove_user

    store, name = Store(load_settings(home=home).db_url), f"loadtest-{time.time_ns()}"
    token = add_user(store, name, "viewer")
    try:
        with serving(home) as server:
            return run_load(server.url, token, clients, seconds, cpu=server.cpu_seconds, distinct=distinct)
    finally:
        remove_user(store, name)   # no working token is left behind in the data directory


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadtest",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a data directory with indexed pages")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--distinct", action="store_true", help="never ask a query twice (no cache helps)")
    args = parser.parse_args()
    result = load_test(args.home, args.clients, args.seconds, args.distinct)
    print(result.summary())
    for sample in result.error_samples:
        print(f"  error: {sample}")
    raise SystemExit(1 if result.errors else 0)


if __name__ == "__main__":
    main()
