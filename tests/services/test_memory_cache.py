from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bgservices.services import CacheBackend, CacheWarmer
from bgservices.services._memory_cache import MemoryCache


class _Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _read_while_refreshed(
    make_supervisor: Any, keys: list[int], readers: int, refreshes: int, interval: float
) -> tuple[list[Any], int, int]:
    """Readers check every value while a warmer replaces them all *refreshes* times."""
    version = [0]
    enough_refreshes = threading.Event()

    def loader() -> dict[int, tuple[int, int, int]]:
        version[0] += 1
        v = version[0]
        if v >= refreshes:
            enough_refreshes.set()
        return {k: (k, v, k * v) for k in keys}

    warmer = CacheWarmer(interval=interval, loader=loader, ttl=60, backend=MemoryCache())
    bad: list[Any] = []
    reads = [0]
    enough = threading.Event()

    def reader() -> None:
        get = warmer.cache.get
        while not enough.is_set():
            for k in keys:
                value = get(k)
                if value is None or value[0] != k or value[2] != k * value[1]:
                    bad.append((k, value))
                reads[0] += 1
            time.sleep(0)  # let the warmer have the GIL now and then, even under load

    with make_supervisor(warmer):
        assert warmer.wait_ready(5)
        threads = [threading.Thread(target=reader) for _ in range(readers)]
        for t in threads:
            t.start()
        try:
            assert enough_refreshes.wait(30)
        finally:
            enough.set()
            for t in threads:
                t.join(10)
    return bad, reads[0], warmer.runs


def test_it_is_a_cache_backend() -> None:
    assert isinstance(MemoryCache(), CacheBackend)


@pytest.mark.parametrize(
    ("keys", "readers", "refreshes", "interval"),
    [(50, 8, 30, 0.002), (300, 4, 40, 0.001)],
    ids=["eight-readers", "refreshed-every-millisecond"],
)
def test_readers_never_see_a_missing_or_torn_value_after_ready(
    make_supervisor: Any, keys: int, readers: int, refreshes: int, interval: float
) -> None:
    bad, reads, runs = _read_while_refreshed(
        make_supervisor, list(range(keys)), readers, refreshes, interval
    )
    assert bad == [] and reads > 0 and runs >= refreshes - 1


def test_reads_take_no_lock_while_a_writer_holds_it() -> None:
    cache = MemoryCache()
    cache.set("k", "v", ttl=60)
    got: list[Any] = []
    with cache._write:  # a writer in the middle of a refresh
        reader = threading.Thread(target=lambda: got.extend([cache.get("k"), "k" in cache]))
        reader.start()
        reader.join(5)
        assert not reader.is_alive()
    assert got == ["v", True]


def test_entries_expire_after_their_ttl() -> None:
    clock = _Clock(100.0)
    cache = MemoryCache(timer=clock)
    cache.set("k", "v", ttl=10)
    clock.now = 109.9
    assert cache.get("k") == "v" and len(cache) == 1 and "k" in cache
    clock.now = 110.0  # alive while timer() < set time + ttl, as in cachetools
    assert cache.get("k") is None and cache.get("k", "gone") == "gone" and len(cache) == 0
    cache.set("k", "v", ttl=10)
    cache.delete("k")
    assert "k" not in cache
    cache.delete("never there")


def test_a_refresh_extends_the_life_and_a_non_positive_ttl_removes() -> None:
    clock = _Clock(0.0)
    cache = MemoryCache(timer=clock)
    cache.set("k", 1, ttl=10)
    clock.now = 8.0
    cache.set("k", 2, ttl=10)
    clock.now = 15.0
    assert cache.get("k") == 2
    cache.set("k", 3, ttl=0)
    assert "k" not in cache and len(cache) == 0


def test_over_maxsize_the_expired_go_first_then_those_closest_to_expiry() -> None:
    clock = _Clock(0.0)
    cache = MemoryCache(maxsize=3, timer=clock)
    cache.set("short", 1, ttl=5)
    cache.set("a", 1, ttl=100)
    cache.set("b", 1, ttl=50)
    clock.now = 6.0  # "short" has expired: it makes room, nobody live is evicted
    cache.set("c", 1, ttl=100)
    assert [k in cache for k in ("short", "a", "b", "c")] == [False, True, True, True]
    cache.set("d", 1, ttl=1)  # full of live entries: "b" expires soonest of the others
    assert [k in cache for k in ("a", "b", "c", "d")] == [True, False, True, True]
    assert len(cache) == 3 and cache.maxsize == 3


def test_rewrites_keep_the_size_and_the_expiry_heap_bounded() -> None:
    clock = _Clock(0.0)
    cache = MemoryCache(maxsize=100, timer=clock)
    for round_ in range(50):
        clock.now = float(round_)
        for k in range(100):
            cache.set(k, (k, round_), ttl=10)
    assert len(cache) == 100 and all(cache.get(k) == (k, 49) for k in range(100))
    assert len(cache._expiries) <= 2 * 100 + 16 + 1
    clock.now = 58.9
    assert len(cache) == 100
    clock.now = 59.0
    assert len(cache) == 0 and cache.get(0) is None
