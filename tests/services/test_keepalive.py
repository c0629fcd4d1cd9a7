from __future__ import annotations

import json
import threading

import pytest
import structlog

from bgservices import ConfigError
from bgservices.services import Health, KeepAlive

from .conftest import CountingServer


def test_twenty_pings_ride_one_connection(make_supervisor, http_server: CountingServer) -> None:
    ping = KeepAlive(url=http_server.url, interval=0.005)
    with make_supervisor(ping):
        http_server.wait_requests(20)
    assert http_server.connections == 1
    status = ping.status()
    json.dumps(status)
    assert status["health"] == "up" and status["probes"] >= 20 and status["failures"] == 0
    assert status["latency_last"] > 0 and 0 < status["latency_mean"] <= status["latency_p95"] * 10


def test_the_application_rides_the_same_warm_connection(
    make_supervisor, http_server: CountingServer
) -> None:
    ping = KeepAlive(url=http_server.url, interval=0.005, method="GET")
    with make_supervisor(ping):
        http_server.wait_requests(3)
        assert ping.session.get(http_server.url, timeout=5).text == "ok"
    assert http_server.connections <= 2  # one pool: ours and, at most, one in use in parallel


def test_down_after_threshold_then_up_once_per_transition(
    make_supervisor, http_server: CountingServer
) -> None:
    downs, ups = [], []
    went_down, came_up = threading.Event(), threading.Event()

    def on_down(service: KeepAlive) -> None:
        downs.append(service.consecutive_failures)
        went_down.set()

    def on_up(service: KeepAlive) -> None:
        ups.append(service.health)
        came_up.set()

    ping = KeepAlive(
        url=http_server.url, interval=0.005, timeout=1, failure_threshold=3,
        on_down=on_down, on_up=on_up,
    )  # fmt: skip
    with make_supervisor(ping):
        http_server.wait_requests(2)
        assert ping.health is Health.UP
        http_server.stop()
        assert went_down.wait(10)
        failures_when_down = ping.failures
        http_server.start()
        assert came_up.wait(10)
        http_server.wait_requests(http_server.requests + 3)
    assert downs == [3] and failures_when_down >= 3
    assert ups == [Health.UP] and ping.health is Health.UP


def test_unexpected_status_is_a_failure(make_supervisor, http_server: CountingServer) -> None:
    http_server.status = 503
    went_down = threading.Event()
    ping = KeepAlive(
        url=http_server.url, interval=0.005, failure_threshold=2, on_down=lambda s: went_down.set()
    )
    with make_supervisor(ping):
        assert went_down.wait(10)
    assert ping.last_failure == "status 503"
    assert KeepAlive(url="http://x", expected_status=[503])._expected(503)


def test_credentials_never_reach_logs_or_status(
    make_supervisor, http_server: CountingServer
) -> None:
    url = http_server.url.replace("http://", "http://admin:hunter2@")
    went_down = threading.Event()
    ping = KeepAlive(
        url=url, interval=0.005, failure_threshold=1, timeout=1,
        headers={"Authorization": "Bearer tok-123", "Cookie": "sid=cookie-456", "X-Trace": "1"},
        on_down=lambda s: went_down.set(),
    )  # fmt: skip
    with structlog.testing.capture_logs() as logs, make_supervisor(ping):
        http_server.wait_requests(2)
        http_server.stop()
        assert went_down.wait(10)
    sent = http_server.seen_headers[0]
    assert sent["Cookie"] == "sid=cookie-456" and sent["X-Trace"] == "1"  # the headers were used
    seen = json.dumps(ping.status()) + json.dumps(logs, default=str)
    for secret in ("hunter2", "tok-123", "cookie-456"):
        assert secret not in seen
    assert ping.status()["url"].startswith("http://***@127.0.0.1")
    assert ping.status()["headers"]["X-Trace"] == "1"


def test_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="url: must start with http:// or https://"):
        KeepAlive(url="ftp://127.0.0.1/")
    with pytest.raises(ConfigError, match="url: required option is missing"):
        KeepAlive()


def test_the_pooled_connection_has_tcp_keepalive_on(
    make_supervisor, recorder, http_server: CountingServer
) -> None:
    import socket

    ping = KeepAlive(url=http_server.url, interval=3600)  # one ping, then the pool sits idle
    with make_supervisor(ping):
        recorder.wait_for("keepalive.up")  # the response was read: the connection is pooled
        pools = ping.session.get_adapter(http_server.url).poolmanager.pools
        (connection,) = [c for key in pools.keys() for c in pools[key].pool.queue if c]  # noqa: SIM118 (not iterable)
        assert connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
