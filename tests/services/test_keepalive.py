from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

import pytest
import structlog

from bgservices import ConfigError, ServiceState
from bgservices._redact import redact_text, redact_url, url_secrets
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


class TricklingServer:
    """Answers every connection with a status line, then one header byte every 50 ms."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._done = threading.Event()
        self.trickling = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.05)
        while not self._done.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self.trickling.set()
            while not self._done.wait(0.05):
                conn.sendall(b"x")

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._listener.close()


def test_timeout_bounds_the_whole_probe_even_when_bytes_trickle(make_supervisor) -> None:
    server = TricklingServer()
    went_down = threading.Event()
    ping = KeepAlive(
        url=f"http://127.0.0.1:{server.port}/", timeout=0.3, interval=60, failure_threshold=1,
        on_down=lambda s: went_down.set(),
    )  # fmt: skip
    try:
        with make_supervisor(ping):
            began = time.monotonic()
            assert went_down.wait(10), "a trickling server kept the probe alive past its timeout"
            assert time.monotonic() - began < 3
    finally:
        server.close()
    assert ping.failures == 1 and ping.errors == 0
    assert ping.last_failure == "timed out: no complete answer within 0.3s"


def test_a_stop_cuts_the_probe_in_flight_short(make_supervisor) -> None:
    server = TricklingServer()
    ping = KeepAlive(url=f"http://127.0.0.1:{server.port}/", timeout=30, interval=60)
    try:
        sup = make_supervisor(ping)
        sup.start()
        assert server.trickling.wait(10)
        began = time.monotonic()
        sup.stop()
        assert ping.wait_for_state(ServiceState.STOPPED, timeout=5)
        assert time.monotonic() - began < 3 and ping.failures == 0
    finally:
        server.close()


def test_any_exception_in_a_probe_is_a_failed_probe(make_supervisor, http_server) -> None:
    went_down = threading.Event()
    ping = KeepAlive(
        url=http_server.url, interval=0.01, failure_threshold=2,
        headers={"X-Name": "snow \u2603"},  # not latin-1: http.client cannot encode it
        on_down=lambda s: went_down.set(),
    )  # fmt: skip
    with make_supervisor(ping):
        assert went_down.wait(10)
    assert ping.failures >= 2 and ping.errors == 0  # failed probes, not failed ticks
    assert ping.last_failure is not None and "UnicodeEncodeError" in ping.last_failure


def test_redaction_keeps_the_host_and_hides_query_secrets(make_supervisor, recorder) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    url = f"http://u:1@127.0.0.1:{port}/health?api_key=K3Y-VALUE&x=1&access_token=T0KEN-VALUE"
    went_down = threading.Event()
    ping = KeepAlive(
        url=url, interval=0.01, timeout=1, failure_threshold=1, on_down=lambda s: went_down.set()
    )
    with make_supervisor(ping):
        assert went_down.wait(10)
    status = ping.status()
    shown = json.dumps(status) + json.dumps(list(recorder), default=str)
    assert "K3Y-VALUE" not in shown and "T0KEN-VALUE" not in shown
    assert status["url"] == f"http://***@127.0.0.1:{port}/health?api_key=***&x=1&access_token=***"
    assert f"127.0.0.1:{port}" in status["last_failure"] or f"port={port}" in status["last_failure"]
    assert "127.0.0.1" in status["last_failure"] and "***27" not in status["last_failure"]
    down = recorder.wait_for("keepalive.down")
    assert down["url"] == status["url"] and "127.0.0.1" in down["error"]


def test_a_secret_repeated_outside_its_place_in_the_url_is_hidden_too(
    make_supervisor, recorder
) -> None:
    """The password again in the path, a token in the fragment: not in health, status, logs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    url = f"http://admin:hunter2x@127.0.0.1:{port}/hunter2x/health#token=FRAG-SECRET"
    went_down = threading.Event()
    ping = KeepAlive(
        url=url, interval=0.01, timeout=1, failure_threshold=1, on_down=lambda s: went_down.set()
    )
    with make_supervisor(ping) as sup:
        assert went_down.wait(10)
        health = sup.health()["services"][ping.name]
    assert health["health"] == "failing"
    shown = json.dumps(health) + json.dumps(ping.status()) + json.dumps(list(recorder), default=str)
    assert "hunter2x" not in shown and "FRAG-SECRET" not in shown
    assert ping.status()["url"] == f"http://***@127.0.0.1:{port}/***/health#token=***"


def test_redact_text_scrubs_structure_not_every_digit() -> None:
    secrets = url_secrets("http://u:1@127.0.0.1/x?token=abcdef&sig=zz")
    text = "GET http://u:1@127.0.0.1/x?token=abcdef&sig=zz failed; token abcdef; 127.0.0.1"
    assert redact_text(text, secrets) == (
        "GET http://***@127.0.0.1/x?token=***&sig=*** failed; token ***; 127.0.0.1"
    )
    assert redact_url("https://h/p?password=pw&page=2&client_secret=s#f") == (
        "https://h/p?password=***&page=2&client_secret=***#f"
    )
    assert redact_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/"


def test_each_launch_gets_a_fresh_session(make_supervisor, http_server) -> None:
    ping = KeepAlive(url=http_server.url, interval=3600)
    first = ping.session
    ping.init_state()  # what a new launch, or a forked child, does
    assert ping.session is not first


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_does_not_share_the_parents_session(
    make_supervisor, recorder, http_server
) -> None:
    ping = KeepAlive(url=http_server.url, interval=3600)
    with make_supervisor(ping):
        recorder.wait_for("keepalive.up")
        parent = ping.session  # kept alive, so that its id cannot be reused
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.write(write, b"fresh" if ping.session is not parent else b"shared")
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as answer:
            said = answer.read()
        os.waitpid(pid, 0)
    assert said == b"fresh"


@pytest.mark.parametrize("trust_env", [True, False])
def test_trust_env_false_turns_the_environment_proxy_off(
    monkeypatch: pytest.MonkeyPatch, http_server: CountingServer, trust_env: bool
) -> None:
    proxy = CountingServer()  # answers the proxied request itself, as a proxy would
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        options = {} if trust_env else {"trust_env": False}
        ping = KeepAlive(url=http_server.url, interval=3600, **options)
        ping.setup()
        ping.tick()
        ping.teardown()
        assert ping.health is Health.UP
        assert (proxy.requests, http_server.requests) == ((1, 0) if trust_env else (0, 1))
    finally:
        proxy.stop()
