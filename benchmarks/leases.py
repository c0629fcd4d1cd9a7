"""Leases and the shared cache, against a real redis-server (skipped without one).

Failover after SIGKILL of the holder (bounded by ttl + one retry interval) and after a clean
stop (bounded by one retry interval), in real processes; the Redis commands a lease costs per
minute, holder and standby; and shared-cache reads (near-cache hit, Redis round trip) beside
the plain in-memory cache.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from ._common import Result, standalone

TTL, RETRY = 1.0, 0.2

# A worker holding the lease writes its pid to "holder" every 10 ms.
_CHILD = """
import os, sys, redis
from bgservices import PeriodicService, Supervisor
client = redis.Redis.from_url(sys.argv[1])
class Job(PeriodicService):
    interval = 0.01
    def tick(self):
        client.set("holder", os.getpid())
lease = {"url": sys.argv[1], "key": sys.argv[4], "ttl": float(sys.argv[2]),
         "retry_interval": float(sys.argv[3])}
sup = Supervisor([Job(lease=lease)])
sup.add_listener(lambda e: e.event == "lease.standby" and client.set("standby", os.getpid()))
sys.exit(sup.run())
"""


def _until(predicate: Any, timeout: float = 60.0) -> float:
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout:
            raise TimeoutError("the lease never moved")
        time.sleep(0.001)
    return time.perf_counter() - began


def _failover(url: str, client: Any, how: signal.Signals, key: str) -> float:
    """Seconds from signalling the holder to the standby writing as the new holder."""
    client.delete("holder", "standby")
    argv = [sys.executable, "-c", _CHILD, url, str(TTL), str(RETRY), key]
    first = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    second = None
    try:
        _until(lambda: client.get("holder") == str(first.pid).encode())
        second = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        _until(lambda: client.get("standby") == str(second.pid).encode())
        first.send_signal(how)
        took = _until(lambda: client.get("holder") == str(second.pid).encode())
        first.wait(10)
        return took
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _commands_per_minute(url: str, seconds: float) -> tuple[float, float]:
    """Redis commands a holder and a standby send per minute at TTL (ttl / 3 cadence)."""
    from bgservices import Service, ServiceState, Supervisor

    class Idle(Service):
        def run(self) -> None:
            while not self.wait(60):
                pass

    lease = {"url": url, "key": "count", "ttl": TTL, "retry_interval": TTL / 3}
    services = [Idle(name="a", lease=lease), Idle(name="b", lease=lease)]
    sups = [Supervisor([s]) for s in services]
    for sup in sups:
        sup.start()
    try:
        backends = {s.name: s._lease_runner._get_backend() for s in services}
        before = {name: b.commands for name, b in backends.items()}  # type: ignore[attr-defined]
        time.sleep(seconds)
        counts = {n: b.commands - before[n] for n, b in backends.items()}  # type: ignore[attr-defined]
        holder = next(s.name for s in services if s.state is ServiceState.RUNNING)
        standby = next(s.name for s in services if s.name != holder)
    finally:
        for sup in sups:
            sup.stop()
    return counts[holder] * 60 / seconds, counts[standby] * 60 / seconds


def _read_ns(get: Any, key: str, n: int) -> float:
    began = time.perf_counter()
    for _ in range(n):
        get(key)
    return (time.perf_counter() - began) / n * 1e9


def _cache_reads(url: str, n: int) -> tuple[float, float, float]:
    from bgservices.services import MemoryCache, RedisCache

    near, direct = RedisCache(url, near_ttl=3600), RedisCache(url, near_ttl=0)
    plain = MemoryCache()
    try:
        near.set("k", {"v": 1}, ttl=60)
        plain.set("k", {"v": 1}, ttl=60)
        near.get("k")
        return (
            _read_ns(near.get, "k", n),
            _read_ns(direct.get, "k", max(200, n // 100)),
            _read_ns(plain.get, "k", n),
        )
    finally:
        near.close()
        direct.close()


def run(quick: bool = False) -> list[Result]:
    if shutil.which("redis-server") is None:
        print("leases: skipped, no redis-server (Debian: apt-get install redis-server)")
        return []
    try:
        import redis
    except ImportError:
        print("leases: skipped, no redis-py (pip install 'bgservices[redis]')")
        return []
    from tests.leases._redis_server import RedisServer

    server = RedisServer(Path(tempfile.mkdtemp()))
    server.start()
    client = redis.Redis.from_url(server.url)
    try:
        repeats = 1 if quick else 3
        url = server.url
        killed = median(_failover(url, client, signal.SIGKILL, f"k{i}") for i in range(repeats))
        stopped = median(_failover(url, client, signal.SIGTERM, f"s{i}") for i in range(repeats))
        holder, standby = _commands_per_minute(server.url, 2.0 if quick else 6.0)
        near, round_trip, plain = _cache_reads(server.url, 20_000 if quick else 200_000)
    finally:
        client.close()
        server.stop()
    scale = 15 / TTL  # figures at the default ttl of 15 s
    return [
        Result(
            name=f"lease failover after SIGKILL of the holder (ttl {TTL:g} s, retry {RETRY:g} s)",
            unit="ms", ours=killed * 1000, peers={"bound: ttl + one retry": (TTL + RETRY) * 1000},
            ratio=(TTL + RETRY) / killed, target="within ttl + one retry interval (ratio >= 1)",
            note=f"median of {repeats}; the lease expires between ttl*2/3 and ttl after the kill",
        ),
        Result(
            name="lease takeover after a clean stop of the holder",
            unit="ms", ours=stopped * 1000, peers={"bound: one retry interval": RETRY * 1000},
            ratio=RETRY / stopped, target="within one retry interval (ratio >= 1)",
            note=f"median of {repeats}; includes the holder's stop and the standby's setup",
        ),
        Result(
            name=f"Redis commands per lease per minute (ttl {TTL:g} s; at 15 s divide by 15)",
            unit="commands/min", ours=holder, peers={"a standby": standby},
            target=f"holder 3 per ttl; at ttl 15 s: {holder / scale:.0f} (holder), "
            f"{standby / scale:.0f} (standby) per minute",
        ),
        Result(
            name="shared cache read, RedisCache near-cache hit",
            unit="ns", ours=near,
            peers={"MemoryCache.get": plain, "RedisCache round trip (near_ttl=0)": round_trip},
            ratio=round_trip / near, target="microseconds: ratio = round trip / near hit",
        ),
    ]  # fmt: skip


if __name__ == "__main__":
    standalone(run, __doc__)
