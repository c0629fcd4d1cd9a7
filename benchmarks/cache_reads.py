"""Cache reads on the request path: 4 reader threads while a writer refreshes every key.

The same run measures bgservices' lock-free ``MemoryCache``, a plain ``dict`` (the floor),
``cachetools.TTLCache`` behind a lock (what one writes by hand), and the locked
``cachetools.TLRUCache`` the ``MemoryCache`` was before. The writer replaces all 1,000 keys,
pauses 1 ms, and again, for the whole measurement. p99 is of single reads timed with
``perf_counter_ns`` (the timer's own ~0.1 us included, equally for all); gets/s are all
readers' reads together over a fixed time. Each figure is the median of several rounds, the
contenders interleaved within each round.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import cachetools

from bgservices.services._memory_cache import MemoryCache

from ._common import Result, standalone

KEYS = list(range(1000))
READERS = 4
TTL = 60.0


class _Locked:
    """A cachetools cache behind one lock: the usual way to share one between threads."""

    def __init__(self, cache: cachetools.Cache[Hashable, Any]) -> None:
        self._lock = threading.Lock()
        self._cache = cache

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._cache.get(key, default)

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        with self._lock:
            self._cache[key] = value


class _LockedTLRU:
    """bgservices' MemoryCache until this release: a TLRUCache with a TTL per entry, locked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: cachetools.TLRUCache[Hashable, tuple[Any, float]] = cachetools.TLRUCache(
            10_000, ttu=lambda _key, entry, now: now + entry[1]
        )

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            entry = self._data.get(key)
        return default if entry is None else entry[0]

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        with self._lock:
            self._data[key] = (value, ttl)


class _Dict(dict[Hashable, Any]):
    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        self[key] = value


CONTENDERS: dict[str, Callable[[], Any]] = {
    "ours": MemoryCache,
    "plain dict (no TTL, no bound)": _Dict,
    "cachetools.TTLCache + lock": lambda: _Locked(cachetools.TTLCache(10_000, TTL)),
    "MemoryCache before (TLRUCache + lock)": _LockedTLRU,
}


def _while_refreshing(cache: Any, body: Callable[[], None]) -> None:
    """Run *body* while another thread rewrites every key, pausing 1 ms between rounds."""
    done = threading.Event()

    def writer() -> None:
        round_ = 0
        while not done.is_set():
            round_ += 1
            for key in KEYS:
                cache.set(key, (key, round_), TTL)
            done.wait(0.001)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        body()
    finally:
        done.set()
        thread.join()


def _in_readers(readers: int, reader: Callable[[], None]) -> None:
    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def p99_us(cache: Any, reads: int) -> float:
    """99th percentile of single reads by 4 readers during refreshes, in microseconds."""
    samples: list[list[int]] = []

    def reader() -> None:
        get, clock, keys, n = cache.get, time.perf_counter_ns, KEYS, len(KEYS)
        mine = [0] * reads
        for i in range(reads):
            key = keys[i % n]
            began = clock()
            get(key)
            mine[i] = clock() - began
        samples.append(mine)

    _while_refreshing(cache, lambda: _in_readers(READERS, reader))
    flat = sorted(x for mine in samples for x in mine)
    return flat[int(0.99 * len(flat))] / 1000


def gets_per_second(cache: Any, seconds: float, readers: int = READERS) -> float:
    """All readers' reads together per second, during refreshes."""
    counts: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        get, keys, count = cache.get, KEYS, 0
        while not stop.is_set():
            for key in keys:
                get(key)
            count += len(keys)
        counts.append(count)

    def body() -> None:
        threads = [threading.Thread(target=reader) for _ in range(readers)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed[0] = time.perf_counter() - began

    elapsed = [1.0]
    _while_refreshing(cache, body)
    return sum(counts) / elapsed[0]


def run(quick: bool = False) -> list[Result]:
    rounds, reads, seconds = (3, 20_000, 0.2) if quick else (5, 100_000, 0.5)
    p99: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    rate: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    alone: dict[str, list[float]] = {"ours": [], "MemoryCache before (TLRUCache + lock)": []}
    for _ in range(rounds):
        for name, make in CONTENDERS.items():
            cache = make()
            for key in KEYS:
                cache.set(key, (key, 0), TTL)
            p99[name].append(p99_us(cache, reads))
            rate[name].append(gets_per_second(cache, seconds))
            if name in alone:
                alone[name].append(gets_per_second(cache, seconds, readers=1))
    p99_m = {name: statistics.median(v) for name, v in p99.items()}
    rate_m = {name: statistics.median(v) for name, v in rate.items()}
    alone_m = {name: statistics.median(v) for name, v in alone.items()}
    before = "MemoryCache before (TLRUCache + lock)"
    ours_p99, ours_rate = p99_m.pop("ours"), rate_m.pop("ours")
    return [
        Result(
            name=f"cache read p99, {READERS} readers during refreshes",
            unit="us",
            ours=ours_p99,
            peers=p99_m,
            ratio=p99_m[before] / ours_p99,
            target="<= 5 us",
        ),
        Result(
            name=f"cache reads, {READERS} readers together during refreshes",
            unit="gets/s",
            ours=ours_rate,
            peers=rate_m,
            ratio=ours_rate / rate_m[before],
            target=">= 20x the MemoryCache before",
            note=(
                f"one reader alone: ours {alone_m['ours']:,.0f}/s, before "
                f"{alone_m[before]:,.0f}/s; ratio here is ours / before (higher is better)"
            ),
        ),
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
