"""Real processes competing for one Redis lease: one active at a time, failover, fencing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from .._process import App, until
from ._redis_server import RedisServer

TTL, RETRY = 1.0, 0.2


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[object]:
    import redis

    connection = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    connection.close()


class Sampler:
    """Reads the set of running pids every few ms in a thread; remembers the worst sample."""

    def __init__(self, client: object, ignore: set[str]) -> None:
        self.client, self.ignore = client, ignore
        self.samples = 0
        self.most = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.003):
            running = set(self.client.smembers("running")) - self.ignore  # type: ignore[attr-defined]
            self.samples += 1
            self.most = max(self.most, len(running))

    def stop(self) -> None:
        self._done.set()
        self._thread.join(10)


def _log(client: object) -> list[tuple[int, str]]:
    entries = client.lrange("log", 0, -1)  # type: ignore[attr-defined]
    return [(int(token), pid) for token, pid in (e.split(":") for e in entries)]


def _writer(client: object) -> str:
    return str(client.lindex("log", -1)).split(":")[1]  # type: ignore[attr-defined]


def test_three_processes_one_active_failover_on_kill_and_on_stop(
    redis_server: RedisServer, client: object
) -> None:
    apps = {}
    try:
        for _ in range(3):
            app = App.script("lease_app.py", redis_server.url, str(TTL), str(RETRY))
            apps[str(app.proc.pid)] = app
        for app in apps.values():
            app.wait_line("READY")
        dead: set[str] = set()
        sampler = Sampler(client, dead)
        try:
            assert until(lambda: client.llen("log") > 20)  # type: ignore[attr-defined]
            first = _writer(client)

            killed = time.monotonic()
            os.kill(int(first), signal.SIGKILL)
            apps[first].proc.wait(10)
            dead.add(first)  # its pid stays in the set: it never ran its teardown
            assert until(lambda: _writer(client) != first)
            after_kill = time.monotonic() - killed
            second = _writer(client)

            stopped = time.monotonic()
            apps[second].proc.send_signal(signal.SIGTERM)
            assert until(lambda: _writer(client) not in (first, second))
            after_stop = time.monotonic() - stopped
            assert apps[second].proc.wait(10) == 0
            third = _writer(client)
            assert until(lambda: client.llen("log") > 60)  # type: ignore[attr-defined]
        finally:
            sampler.stop()
        print(
            f"\nfailover after SIGKILL: {after_kill:.3f}s (ttl {TTL}s + retry {RETRY}s); "
            f"after a clean stop: {after_stop:.3f}s; {sampler.samples} samples"
        )
        assert sampler.samples > 50 and sampler.most == 1  # never two running at once
        assert len({first, second, third}) == 3
        log = _log(client)
        tokens = [token for token, _ in log]
        assert tokens == sorted(tokens)  # the fence never went back
        writers = {token: {pid for t, pid in log if t == token} for token in set(tokens)}
        assert all(len(pids) == 1 for pids in writers.values())  # one writer per token
        order = [pid for pid in dict.fromkeys(pid for _, pid in log)]
        assert order == [first, second, third]  # each held it once, in turn
        assert client.get("rejected") is None  # type: ignore[attr-defined]
        assert after_kill < TTL + RETRY + 2.0  # TTL, a retry interval, slack for a busy host
    finally:
        for app in apps.values():
            if app.proc.poll() is None:
                app.proc.kill()
            app.proc.wait(10)
