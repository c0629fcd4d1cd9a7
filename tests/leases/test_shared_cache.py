"""RedisCache: shared values, msgspec encoding, a near-cache, and Redis going away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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
