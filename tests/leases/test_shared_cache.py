"""RedisCache: shared values, msgspec encoding, a near-cache, and Redis going away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime

import msgspec
import pytest

from bgservices import ServiceState, Supervisor
from bgservices.services import CacheWarmer, RedisCache

from ._redis_server import RedisServer

MakeSupervisor = Callable[..., Supervisor]


def test_values_are_shared_msgpack_encoded_and_expire_in_redis(redis_server: RedisServer) -> None:
    writer, reader = RedisCache(redis_server.url), RedisCache(redis_server.url, near_ttl=0.0)
    try:
        writer.set("prices", {"EUR": 1.1, "codes": [1, 2]}, ttl=0.3)
        assert reader.get("prices") == {"EUR": 1.1, "codes": [1, 2]}
        raw = writer.client.get('bgservices:cache:"prices"')
        assert isinstance(raw, bytes)
        assert msgspec.msgpack.decode(raw) == {"EUR": 1.1, "codes": [1, 2]}  # not a pickle
        assert 0 < int(writer.client.pttl('bgservices:cache:"prices"')) <= 300  # type: ignore[arg-type]
        assert reader.get(1) is None and reader.get("1", "none") == "none"  # keys kept apart
        deadline = time.monotonic() + 5
        while reader.get("prices") is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.get("prices", "gone") == "gone"  # Redis kept the TTL
        with pytest.raises(TypeError):
            writer.set("x", object(), ttl=1)  # never pickled
    finally:
        writer.close()
        reader.close()


def test_reads_within_near_ttl_do_not_go_to_redis(redis_server: RedisServer) -> None:
    writer, reader = RedisCache(redis_server.url), RedisCache(redis_server.url, near_ttl=30.0)
    try:
        writer.set("k", 1, ttl=60)
        assert reader.get("k") == 1
        writer.set("k", 2, ttl=60)
        assert [reader.get("k") for _ in range(100)] == [1] * 100  # near: no round trip
        assert reader.redis_reads == 1 and reader.near_hits == 100
    finally:
        writer.close()
        reader.close()


def test_redis_down_serves_last_values_degraded_then_recovers(redis_server: RedisServer) -> None:
    writer = RedisCache(redis_server.url)
    reader = RedisCache(redis_server.url, near_ttl=0.05, timeout=0.2)
    try:
        writer.set("k", "v1", ttl=60)
        assert reader.get("k") == "v1"
        redis_server.kill()
        time.sleep(0.06)  # past near_ttl: the next read goes to Redis, which is gone
        assert reader.get("k") == "v1" and reader.degraded
        errors = reader.errors
        assert [reader.get("k") for _ in range(1000)] == ["v1"] * 1000
        assert reader.errors <= errors + 4  # a few retries, each after a doubled backoff
        assert reader.get("never seen", "default") == "default"
        assert reader.stats()["degraded"] is True
        redis_server.start()
        writer.set("k", "v2", ttl=60)
        deadline = time.monotonic() + 10
        while reader.get("k") != "v2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.get("k") == "v2" and not reader.degraded  # reconnected after the backoff
    finally:
        writer.close()
        reader.close()


def test_a_leased_warmer_loads_once_and_a_follower_reads_its_values(
    make_supervisor: MakeSupervisor, redis_server: RedisServer
) -> None:
    loads: list[str] = []
    lock = threading.Lock()

    def loader_for(name: str) -> Callable[[], dict[str, int]]:
        def load() -> dict[str, int]:
            with lock:
                loads.append(name)
                return {"answer": 42, "loads": len(loads)}

        return load

    lease = {"url": redis_server.url, "key": "warm", "ttl": 1.0, "retry_interval": 0.2}
    warmers = [
        CacheWarmer(
            name=name, loader=loader_for(name), interval=0.1, lease=lease,
            backend=RedisCache(redis_server.url, prefix="c:", near_ttl=0.05),
        )
        for name in ("one", "two")
    ]  # fmt: skip
    sups = {warmer.name: make_supervisor(warmer).start() for warmer in warmers}
    follower = next(w for w in warmers if w.state is ServiceState.STANDBY)
    assert follower.wait_ready(timeout=10)  # the leader's warm-up counts
    assert follower.cache.get("answer") == 42
    time.sleep(0.5)
    with lock:
        assert set(loads) == {next(w.name for w in warmers if w is not follower)}
    assert follower.runs == 0
    redis_server.kill()  # the follower serves its last values, and says it is degraded
    time.sleep(0.1)  # past near_ttl: the next read goes to Redis, which is gone
    assert follower.cache.get("answer") == 42
    health = sups[follower.name].health()["services"][follower.name]
    assert health["health"] == "degraded", health
    assert any("shared cache unreachable" in reason for reason in health["reasons"])
    for warmer in warmers:
        assert isinstance(warmer.cache, RedisCache)
        warmer.cache.close()


def test_importing_the_services_never_imports_redis_py() -> None:
    """RedisCache imports redis-py in its constructor: the package imports without it."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from bgservices.services import CacheWarmer, RedisCache\n"
        "assert RedisCache.__name__ == 'RedisCache'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_run_whose_mark_ready_fails_is_not_counted_as_a_success(
    make_supervisor: MakeSupervisor, redis_server: RedisServer
) -> None:
    """Nothing to write, so marking the shared cache ready is the run's only Redis call."""
    cache = RedisCache(redis_server.url, timeout=0.2)
    redis_server.kill()
    warmer = CacheWarmer(
        loader=dict, backend=cache, interval=0.01, max_consecutive_errors=1, restart="never"
    )
    try:
        with make_supervisor(warmer):
            assert warmer.wait_for_state(ServiceState.FAILED, timeout=10)
        assert warmer.errors == 1 and cache.degraded
        assert warmer.runs == 0 and warmer.last_success_at is None and not warmer.ready
    finally:
        cache.close()


def test_the_writer_reads_its_values_as_decoded_whether_near_or_from_redis(
    redis_server: RedisServer,
) -> None:
    """A tuple comes back a list, a naive datetime a string: the same from near as from Redis."""
    near = RedisCache(redis_server.url, near_ttl=60.0)  # every read within near_ttl
    far = RedisCache(redis_server.url, near_ttl=0.0)  # every read past it: from Redis
    when = datetime(2026, 1, 2, 3, 4, 5)
    try:
        for writer in (near, far):
            writer.set("pair", (1, "a"), ttl=60)
            writer.set("when", {"at": when}, ttl=60)
            assert writer.get("pair") == [1, "a"]
            assert writer.get("when") == {"at": "2026-01-02T03:04:05"}
        assert (near.near_hits, near.redis_reads) == (2, 0)
        assert (far.near_hits, far.redis_reads) == (0, 2)
    finally:
        near.close()
        far.close()


def test_wait_ready_on_a_shared_cache_ends_when_the_warmer_fails_or_stops(
    make_supervisor: MakeSupervisor, redis_server: RedisServer
) -> None:
    """Redis is up but never marked ready: the warmer's own end must still end the wait."""

    def broken() -> dict[str, int]:
        raise ConnectionError("database down")

    failing = CacheWarmer(
        name="failing", loader=broken, interval=0.01, max_consecutive_errors=1, restart="never",
        backend=RedisCache(redis_server.url, prefix="f:"),
    )  # fmt: skip
    stopped = CacheWarmer(
        name="stopped", loader=lambda: {"a": 1}, initial_delay=3600,
        backend=RedisCache(redis_server.url, prefix="s:"),
    )  # fmt: skip
    results: dict[str, bool] = {}

    def wait(warmer: CacheWarmer) -> None:
        results[warmer.name] = warmer.wait_ready()  # no timeout: must still end

    waiters = {
        w.name: threading.Thread(target=wait, args=(w,), daemon=True) for w in (failing, stopped)
    }
    for waiter in waiters.values():
        waiter.start()  # before the services start: the launch must not strand them
    try:
        with make_supervisor(failing, stopped):
            assert failing.wait_for_state(ServiceState.FAILED, timeout=10)
            waiters["failing"].join(5)
            assert results == {"failing": False}
            assert stopped.state is ServiceState.RUNNING and not stopped.wait_ready(0.1)
        waiters["stopped"].join(5)
        assert results == {"failing": False, "stopped": False}
        assert not failing.wait_ready(3600) and not stopped.wait_ready(3600)  # at once
    finally:
        for warmer in (failing, stopped):
            assert isinstance(warmer.cache, RedisCache)
            warmer.cache.close()


def test_while_degraded_one_reader_probes_redis_and_the_others_serve_near_values(
    redis_server: RedisServer,
) -> None:
    """A stopped (SIGSTOP) redis-server: connections are accepted, and never answered."""
    writer = RedisCache(redis_server.url)
    reader = RedisCache(redis_server.url, near_ttl=0.0, timeout=0.5)
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    try:
        writer.set("k", "v", ttl=60)
        assert reader.get("k") == "v"
        os.kill(pid, signal.SIGSTOP)
        assert reader.get("k") == "v" and reader.degraded and reader.errors == 1
        time.sleep(0.15)  # past the first retry (0.1 s at most): the next read probes Redis
        start = threading.Barrier(8)
        results: list[object] = []

        def read() -> None:
            start.wait(5)
            results.append(reader.get("k"))

        readers = [threading.Thread(target=read) for _ in range(8)]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join(10)
        assert results == ["v"] * 8
        assert reader.errors == 2  # one probe timed out; seven readers were served near
        assert reader.near_hits >= 7
    finally:
        os.kill(pid, signal.SIGCONT)
        writer.close()
        reader.close()
