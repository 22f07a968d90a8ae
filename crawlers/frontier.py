"""A crawl frontier shared through Redis (scrapy-redis) that loses no request when a worker dies.

scrapy-redis gives several crawler processes one request queue and one duplicate filter. Its
queue pops a request and forgets it, so a worker killed mid-crawl loses every request it held,
and the duplicate filter stops them from ever being scheduled again. :class:`ReliableScheduler`
adds what a long crawl on several machines needs:

* a pop moves the request, atomically, into the worker's own in-flight hash; it leaves that hash
  only when Scrapy has finished with it (downloaded, parsed, its items stored, its links queued);
* each worker refreshes a heartbeat key; the in-flight requests of a worker whose heartbeat has
  expired (killed, machine lost) go back to the queue, for whichever worker sees it first;
* the first SIGTERM/SIGINT drains: no new requests are taken, those in flight finish, and the
  process exits with nothing fetched twice; a second signal is Scrapy's usual shutdown, and
  whatever is still in flight then goes back to the queue;
* a worker only finishes when the queue is empty and no worker holds a request, and the worker
  that sees the crawl finished clears the duplicate filter, so the next run starts afresh.

Keys, under ``<frontier_prefix>:<source id>``: ``queue`` (sorted set, scrapy-redis's priority
queue format), ``dupefilter`` (set), ``inflight:<worker>`` (hash: request -> score),
``owners`` (set of workers with an in-flight hash), ``alive:<worker>`` (heartbeat, with a TTL).
Requests are pickled, as scrapy-redis does: the Redis server must be as trusted as the crawler.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from scrapy import Request
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from ground.config import Settings

log = logging.getLogger(__name__)

# Take the best ARGV[2] requests and record them as this worker's, in one step: a request is
# always queued or held, never in neither place.
_POP = """
local r = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
if #r == 0 then return {} end
local out = {}
for i = 1, #r, 2 do
  redis.call('ZREM', KEYS[1], r[i])
  redis.call('HSET', KEYS[2], r[i], r[i + 1])
  out[#out + 1] = r[i]
end
redis.call('SADD', KEYS[3], ARGV[1])
return out
"""
# Filter and queue in one round trip (ARGV: fingerprint, score, request, dont_filter).
_PUSH = """
if ARGV[4] == '0' and redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1
"""
# Requeue the in-flight requests of dead workers (no heartbeat) and of ARGV[2] (a worker closing).
_RECLAIM = """
local moved = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if w == ARGV[2] or redis.call('EXISTS', ARGV[1] .. ':alive:' .. w) == 0 then
    local key = ARGV[1] .. ':inflight:' .. w
    local items = redis.call('HGETALL', key)
    for i = 1, #items, 2 do
      redis.call('ZADD', KEYS[1], items[i + 1], items[i])
      moved = moved + 1
    end
    redis.call('DEL', key)
    redis.call('SREM', KEYS[2], w)
  end
end
return moved
"""
# Work left anywhere: queued, or held by any worker (alive or not yet presumed dead).
_PENDING = """
local n = redis.call('ZCARD', KEYS[1])
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  n = n + redis.call('HLEN', ARGV[1] .. ':inflight:' .. w)
end
return n
"""
# How often an idle worker asks Redis for work (Scrapy's default engine heartbeat is 5 s).
POLL_SECONDS = 0.5
# Requests taken per round trip: Redis latency, not Redis work, bounds a busy worker.
POP_BATCH = 8


def frontier_settings(config: Settings) -> dict[str, Any]:
    """Scrapy settings for the configured frontier: none for the embedded default."""
    if config.crawl.frontier != "redis":
        return {}
    return {
        "SCHEDULER": "crawlers.frontier.ReliableScheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_QUEUE_CLASS": "scrapy_redis.queue.PriorityQueue",
        # Never flush the shared queue when one worker closes: the others may still be crawling.
        "SCHEDULER_PERSIST": True,
        "REDIS_URL": config.redis_url,
        "FRONTIER_PREFIX": config.crawl.frontier_prefix,
        "FRONTIER_HEARTBEAT_SECONDS": config.crawl.frontier_heartbeat_seconds,
    }


@dataclass(frozen=True)
class FrontierKeys:
    base: str
    worker: str

    @property
    def queue(self) -> str:
        return f"{self.base}:queue"

    @property
    def dupefilter(self) -> str:
        return f"{self.base}:dupefilter"

    @property
    def owners(self) -> str:
        return f"{self.base}:owners"

    @property
    def inflight(self) -> str:
        return f"{self.base}:inflight:{self.worker}"

    @property
    def alive(self) -> str:
        return f"{self.base}:alive:{self.worker}"


class _Heartbeat(threading.Thread):
    """Refreshes the worker's alive key from a thread, so a long item pipeline step (embedding a
    big page) blocking the reactor does not make a live worker look dead."""

    def __init__(self, server: Any, key: str, ttl_seconds: float) -> None:
        super().__init__(name="frontier-heartbeat", daemon=True)
        self.server, self.key, self.ttl_ms = server, key, max(1, int(ttl_seconds * 1000))
        self.stopped = threading.Event()
        self.beat()

    def beat(self) -> None:
        self.server.set(self.key, os.getpid(), px=self.ttl_ms)

    def run(self) -> None:
        while not self.stopped.wait(self.ttl_ms / 3000):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a blip must not kill the thread; the next beat retries
                log.warning("frontier heartbeat failed; retrying", exc_info=True)

    def stop(self) -> None:
        self.stopped.set()
        self.server.delete(self.key)


class _DrainOnSignal:
    """One handler per process: the first SIGTERM/SIGINT drains every open frontier scheduler,
    the second is passed to the handler it replaced (Scrapy's graceful shutdown)."""

    def __init__(self) -> None:
        self.schedulers: weakref.WeakSet[ReliableScheduler] = weakref.WeakSet()
        self.previous: dict[int, Any] = {}

    def add(self, scheduler: ReliableScheduler) -> None:
        self.schedulers.add(scheduler)
        if threading.current_thread() is threading.main_thread():
            from twisted.internet import reactor

            # Scrapy installs its own handlers once the reactor has started; ours go on top.
            running: Any = reactor
            running.callLater(0, self._install)

    def _install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            current = signal.getsignal(signum)
            if current != self._handle:
                self.previous[signum] = current
                signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        schedulers = list(self.schedulers)
        if not schedulers or any(s.draining for s in schedulers):
            previous = self.previous.get(signum)
            for sig, handler in self.previous.items():
                signal.signal(sig, handler)
            if callable(previous):
                previous(signum, frame)
            return
        for scheduler in schedulers:
            scheduler.draining = True


_DRAIN = _DrainOnSignal()


class ReliableScheduler(Scheduler):
    """scrapy-redis's scheduler with at-least-once requests across worker crashes (see module)."""

    crawler: Any
    draining = False
    _outstanding: dict[Request, bytes]  # handed to the engine, not yet finished with

    @classmethod
    def from_crawler(cls, crawler: Any) -> ReliableScheduler:
        instance = super().from_crawler(crawler)
        instance.crawler = crawler
        instance.prefix = crawler.settings.get("FRONTIER_PREFIX", "loophole")
        instance.heartbeat_seconds = crawler.settings.getfloat("FRONTIER_HEARTBEAT_SECONDS", 30.0)
        instance.worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        instance._outstanding = {}
        return instance

    def open(self, spider: Any) -> None:
        self.spider = spider
        source = getattr(spider, "source_id", "") or spider.name
        self.keys = FrontierKeys(f"{self.prefix}:{source}", self.worker)
        # PriorityQueue supplies scrapy-redis's encoding and push; pops go through _POP below.
        self.queue = PriorityQueue(server=self.server, spider=spider, key=self.keys.queue, serializer=self.serializer)
        debug = spider.settings.getbool("DUPEFILTER_DEBUG")
        self.df = RFPDupeFilter(self.server, key=self.keys.dupefilter, debug=debug)
        self._pop = self.server.register_script(_POP)
        self._push = self.server.register_script(_PUSH)
        self._taken: list[bytes] = []  # popped (so held in our in-flight hash), not yet handed out
        self._reclaim = self.server.register_script(_RECLAIM)
        self._pending = self.server.register_script(_PENDING)
        self._heartbeat = _Heartbeat(self.server, self.keys.alive, self.heartbeat_seconds)
        self._heartbeat.start()
        self.crawler.engine._SLOT_HEARTBEAT_INTERVAL = POLL_SECONDS
        _DRAIN.add(self)
        moved = self._requeue()
        log.info("frontier %s: worker %s joined (%d queued, %d requeued from dead workers)",
                 self.keys.base, self.worker, len(self.queue), moved)

    def _requeue(self, worker: str = "") -> int:
        moved = int(self._reclaim(keys=[self.keys.queue, self.keys.owners], args=[self.keys.base, worker]))
        if moved and self.stats:
            self.stats.inc_value("frontier/requeued", moved)
        return moved

    def _in_progress(self) -> set[Request]:
        """Requests the engine has not finished with (download, callback, items, new links).

        Scrapy has no signal for "done with this request", but its engine keeps exactly that set.
        """
        slot = getattr(self.crawler.engine, "_slot", None)
        return slot.inprogress if slot is not None else set()

    def _acknowledge(self) -> None:
        if not self._outstanding:
            return
        active = self._in_progress()
        done = [request for request in self._outstanding if request not in active]
        if done:
            self.server.hdel(self.keys.inflight, *(self._outstanding.pop(r) for r in done))

    def enqueue_request(self, request: Request) -> bool:
        added = self._push(keys=[self.keys.queue, self.keys.dupefilter],
                           args=[self.df.request_fingerprint(request), -request.priority,
                                 self.queue._encode_request(request), int(request.dont_filter)])
        if not added:
            self.df.log(request, self.spider)
            return False
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def _can_start(self) -> int:
        """How many requests to take from the shared queue now: what this worker's downloader can
        start at once, not what it can hold.

        Scrapy asks the scheduler for requests until the downloader holds CONCURRENT_REQUESTS (16).
        Behind a download delay (the polite default, or AutoThrottle's) they wait in the host's slot,
        one leaving per delay, out of every other worker's reach: on a small site the worker that
        parsed the list held all its notices and a second worker got no work at all. So a slot with
        a delay takes one request when none is waiting in it; a slot without one (a mirror, a
        loopback test) may hold twice its concurrency, which it starts within moments.
        """
        downloader = getattr(self.crawler.engine, "downloader", None)
        slots = list(getattr(downloader, "slots", {}).values())
        if not slots:
            return 1   # the first request opens the host's slot
        room = 0
        for slot in slots:
            if slot.download_delay():
                room += 0 if slot.queue else 1
            else:
                room += max(0, 2 * slot.concurrency - len(slot.active))
        return min(POP_BATCH, room)

    def next_request(self) -> Request | None:
        self._acknowledge()
        if self.draining:
            return None
        if not self._taken:
            wanted = self._can_start()
            if not wanted:
                return None
            self._taken = list(reversed(self._pop(keys=[self.keys.queue, self.keys.inflight, self.keys.owners],
                                                  args=[self.worker, wanted])))
        if not self._taken:
            self._requeue()
            return None
        data = self._taken.pop()
        request = self.queue._decode_request(data)
        self._outstanding[request] = data
        if self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self) -> bool:
        """False only when this worker drains, or when no work is left anywhere."""
        self._acknowledge()
        if self.draining:
            return False
        if self._taken:
            return True
        return int(self._pending(keys=[self.keys.queue, self.keys.owners], args=[self.keys.base])) > 0

    def close(self, reason: str) -> None:
        self._acknowledge()
        returned = self._requeue(self.worker)  # taken or mid-request: back to the queue, not lost
        self._heartbeat.stop()
        if self.stats:
            self.stats.set_value("frontier/drained", self.draining)
        finished = reason == "finished" and not self.draining and not self.has_pending_requests()
        if finished:
            self.df.clear()  # the crawl is complete: the next run fetches everything again
        log.info("frontier %s: worker %s left (%s; %d requests returned to the queue%s)", self.keys.base,
                 self.worker, reason, returned, "; crawl complete" if finished else "")

    def __len__(self) -> int:
        return len(self.queue)
