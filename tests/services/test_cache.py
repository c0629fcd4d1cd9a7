from __future__ import annotations

import json
import threading
import time
from collections.abc import Hashable, Iterator
from typing import Any

import pytest

from bgservices import ConfigError, ServiceState
from bgservices.services import CacheBackend, CacheWarmer, MemoryCache


def test_loader_fills_the_cache_and_ready_is_signalled(make_supervisor) -> None:
    warmer = CacheWarmer(interval=60, loader=lambda: {"a": 1, "b": 2})
    with make_supervisor(warmer):
        assert warmer.wait_ready(5)
        assert warmer.cache.get("a") == 1 and warmer.cache.get("b") == 2
    status = warmer.status()
    json.dumps(status)
    assert (status["ready"], status["runs"], status["keys_warmed"], status["failures"]) == (
        True, 1, 2, 0,
    )  # fmt: skip
    assert status["last_success_at"] is not None and status["last_duration"] >= 0


def test_fetches_run_concurrently_up_to_max_workers(make_supervisor) -> None:
    together = threading.Barrier(4, timeout=5)  # passes only if 4 fetches run at once
    threads: set[str] = set()

    def fetch(key: int) -> int:
        threads.add(threading.current_thread().name)
        together.wait()
        return key * 10

    warmer = CacheWarmer(keys=list(range(8)), fetch=fetch, max_workers=4)
    with make_supervisor(warmer):
        assert warmer.wait_ready(10)
    assert [warmer.cache.get(k) for k in range(8)] == [k * 10 for k in range(8)]
    assert threads == {"bgservices:cache_warmer:fetch"} and warmer.keys_warmed == 8


def test_a_failing_key_spoils_nothing_else(make_supervisor, recorder) -> None:
    def fetch(key: str) -> str:
        if key == "bad":
            raise KeyError(key)
        return key.upper()

    warmer = CacheWarmer(keys=lambda: ["a", "bad", "c"], fetch=fetch)
    with make_supervisor(warmer):
        assert warmer.wait_ready(5)
    assert warmer.cache.get("a") == "A" and warmer.cache.get("c") == "C"
    assert "bad" not in warmer.cache  # type: ignore[operator]
    assert (warmer.failures, warmer.keys_warmed) == (1, 2)
    assert recorder.wait_for("cache.fetch_failed")["key"] == "'bad'"


def test_should_cache_filters_values(make_supervisor) -> None:
    warmer = CacheWarmer(
        loader=lambda: {"keep": 1, "skip": None}, should_cache=lambda k, v: v is not None
    )
    with make_supervisor(warmer):
        assert warmer.wait_ready(5)
    assert warmer.cache.get("keep") == 1 and warmer.cache.get("skip", "absent") == "absent"


def test_a_failing_loader_counts_as_a_tick_error_and_ready_waits(make_supervisor, recorder) -> None:
    calls = []

    def loader() -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database down")
        return {"a": 1}

    warmer = CacheWarmer(interval=0.01, loader=loader)
    with make_supervisor(warmer):
        assert warmer.wait_ready(5)
    assert warmer.errors >= 1 and warmer.cache.get("a") == 1


def test_memory_cache_entries_expire_after_their_ttl() -> None:
    now = [100.0]
    cache = MemoryCache(timer=lambda: now[0])
    cache.set("k", "v", ttl=10)
    now[0] = 109.9
    assert cache.get("k") == "v" and len(cache) == 1
    now[0] = 110.1
    assert cache.get("k") is None and len(cache) == 0
    cache.set("k", "v", ttl=10)
    cache.delete("k")
    assert "k" not in cache


def test_any_backend_with_the_protocol_plugs_in(make_supervisor) -> None:
    class DictBackend:
        def __init__(self) -> None:
            self.data: dict[Hashable, tuple[Any, float]] = {}

        def get(self, key: Hashable, default: Any = None) -> Any:
            return self.data.get(key, (default, 0))[0]

        def set(self, key: Hashable, value: Any, ttl: float) -> None:
            self.data[key] = (value, ttl)

        def delete(self, key: Hashable) -> None:
            self.data.pop(key, None)

    backend = DictBackend()
    assert isinstance(backend, CacheBackend)
    warmer = CacheWarmer(interval=5, loader=lambda: {"x": 1}, backend=backend)
    with make_supervisor(warmer):
        assert warmer.wait_ready(5)
    assert warmer.cache is backend and backend.data == {"x": (1, 15.0)}  # ttl: 3 x interval


def test_loader_or_keys_with_fetch_is_required() -> None:
    with pytest.raises(ConfigError, match="loader: give either loader, or keys together"):
        CacheWarmer()
    with pytest.raises(ConfigError, match="loader: give either"):
        CacheWarmer(loader=dict, keys=[1], fetch=str)
    with pytest.raises(ConfigError, match="fetch: keys and fetch go together"):
        CacheWarmer(keys=[1])
    with pytest.raises(ConfigError, match="backend: must be CacheBackend"):
        CacheWarmer(loader=dict, backend=object())


@pytest.fixture
def hang() -> Iterator[threading.Event]:
    """Set at the end of the test, so that whatever hung on it returns before hygiene checks."""
    release = threading.Event()
    yield release
    release.set()


def test_a_hung_fetch_does_not_stall_the_other_keys(make_supervisor, recorder, hang) -> None:
    def fetch(key: str) -> str:
        if key == "stuck":
            hang.wait(30)
        return key.upper()

    warmer = CacheWarmer(
        keys=["stuck", "a", "b", "c"], fetch=fetch, max_workers=1, fetch_timeout=0.2, interval=60
    )
    with make_supervisor(warmer):
        assert warmer.wait_ready(10)  # the one worker hung on "stuck"; a fresh one did the rest
        assert [warmer.cache.get(k) for k in "abc"] == ["A", "B", "C"]
        status = warmer.status()
        assert (status["failures"], status["timeouts"], status["hung_workers"]) == (1, 1, 1)
        assert recorder.wait_for("cache.fetch_timed_out")["key"] == "'stuck'"
    assert "stuck" not in warmer.cache  # type: ignore[operator]


def test_a_run_never_outlasts_run_timeout(make_supervisor, recorder, hang) -> None:
    warmer = CacheWarmer(
        keys=list(range(6)), fetch=lambda key: hang.wait(30), max_workers=2, run_timeout=0.3
    )
    began = time.monotonic()
    with make_supervisor(warmer):
        recorder.wait_for("cache.run_timed_out", timeout=10)
        assert time.monotonic() - began < 5
        status = warmer.status()
        assert status["failures"] == 6 and status["keys_warmed"] == 0 and status["runs"] == 1
        assert 1 <= status["hung_workers"] <= 4  # bounded: 2 x max_workers at most


def test_a_hung_loader_fails_the_run_and_is_not_started_twice(make_supervisor, hang) -> None:
    calls = []

    def loader() -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            hang.wait(30)
        return {"a": 1}

    warmer = CacheWarmer(loader=loader, interval=0.05, run_timeout=0.1)
    with make_supervisor(warmer):
        assert warmer.wait_for_state(ServiceState.RUNNING, timeout=5)
        deadline = time.monotonic() + 10
        while warmer.errors < 3 and time.monotonic() < deadline:
            assert not warmer.wait_ready(0.05)
        assert warmer.errors >= 3 and len(calls) == 1  # no second loader while the first hangs
        assert warmer.last_error is not None and warmer.last_error["type"] == "TimeoutError"
        assert warmer.status()["hung_workers"] == 1
        hang.set()  # the loader returns: the next run starts a new one, which succeeds
        assert warmer.wait_ready(10) and warmer.cache.get("a") == 1


def test_wait_ready_ends_when_the_service_fails_or_stops(make_supervisor) -> None:
    def broken() -> dict[str, int]:
        raise ConnectionError("database down")

    failing = CacheWarmer(
        name="failing", loader=broken, interval=0.01, max_consecutive_errors=1, restart="never"
    )
    stopped = CacheWarmer(name="stopped", loader=lambda: {"a": 1}, initial_delay=3600)
    results: dict[str, bool] = {}

    def wait(warmer: CacheWarmer) -> None:
        results[warmer.name] = warmer.wait_ready()  # no timeout: must still end

    waiters = [threading.Thread(target=wait, args=(w,)) for w in (failing, stopped)]
    for waiter in waiters:
        waiter.start()  # before the services start: the launch must not strand them
    sup = make_supervisor(failing, stopped)
    with sup:
        assert failing.wait_for_state(ServiceState.FAILED, timeout=10)
        waiters[0].join(5)
        assert results == {"failing": False}
    waiters[1].join(5)
    assert results == {"failing": False, "stopped": False}
    assert not failing.wait_ready() and not stopped.wait_ready()


def test_wait_ready_before_start_is_woken_by_the_first_warm_up(make_supervisor) -> None:
    warmer = CacheWarmer(loader=lambda: {"a": 1})
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(warmer.wait_ready(10)))
    waiter.start()
    with make_supervisor(warmer):
        waiter.join(10)
    assert result == [True]


def test_a_hung_keys_callable_fails_the_run_on_time(make_supervisor, recorder, hang) -> None:
    warmer = CacheWarmer(keys=lambda: hang.wait(30) and [], fetch=str, run_timeout=0.2)
    with make_supervisor(warmer):
        recorder.wait_for("cache.keys_timed_out", timeout=10)
        recorder.wait_for("service.tick_failed", timeout=10)
        assert warmer.last_error is not None and warmer.last_error["type"] == "TimeoutError"
        assert warmer.status()["hung_workers"] == 1 and not warmer.ready
