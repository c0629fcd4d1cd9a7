"""The endpoints as functions, and through the ASGI, WSGI and built-in mounts, in process."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bgservices import PeriodicService, Service, ServiceState, register, registry
from bgservices.services import CacheWarmer, KeepAlive, LogCollector, MemoryMonitor, status_server
from bgservices.services.status_server import StatusServer
from bgservices.web import _endpoints, asgi_app, wsgi_app

HOSTILE = "<script>alert('name')</script>"


class Broken(PeriodicService):
    interval = 0.01
    failing_after_errors = 1

    def tick(self) -> None:
        raise RuntimeError("<img src=x onerror=alert(1)>")


class Idle(Service):
    def run(self) -> None:
        while not self.wait(30):
            pass


def test_the_page_escapes_every_string_and_secrets_stay_redacted(make_supervisor, recorder) -> None:
    secret_url = "http://user:hunter2@127.0.0.1:9/health"
    ping = KeepAlive(name="ping", url=secret_url, interval=0.01, failure_threshold=1,
                     timeout=0.2)  # fmt: skip
    sup = make_supervisor(Broken(name=HOSTILE), ping)
    sup.start()
    recorder.wait_for("keepalive.down", service="ping")
    recorder.wait_for("service.health", service=HOSTILE)
    page = _endpoints.page(sup).body.decode()
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    for endpoint in (_endpoints.page, _endpoints.status, _endpoints.healthz, _endpoints.livez,
                     _endpoints.readyz, _endpoints.metrics):  # fmt: skip
        assert "hunter2" not in endpoint(sup).body.decode(), endpoint.__name__
    assert _endpoints.healthz(sup).status == 503
    assert json.loads(_endpoints.healthz(sup).body)["failing"] == [HOSTILE]


def test_routes_methods_and_the_mounts_agree(make_supervisor) -> None:
    sup = make_supervisor(Idle(name="idle"))
    assert _endpoints.livez(sup).status == 503  # not running yet
    sup.start()
    assert _endpoints.handle(sup, "GET", "/livez").status == 200
    assert _endpoints.handle(sup, "POST", "/livez").status == 405
    assert _endpoints.handle(sup, "GET", "/nope").status == 404
    assert _endpoints.handle(sup, "HEAD", "/healthz").body == b""

    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(wsgi_app(sup)({"REQUEST_METHOD": "GET", "PATH_INFO": "/readyz"},
                                  start_response))  # fmt: skip
    assert seen["status"] == "200 OK" and json.loads(body)["ready"] is True

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/bg/healthz", "root_path": "/bg"}
    asyncio.run(asgi_app(sup)(scope, receive, send))
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"])["healthy"] is True


def test_head_answers_carry_the_get_headers_and_no_body(make_supervisor) -> None:
    server = StatusServer(port=0)
    sup = make_supervisor(Idle(name="idle"), server)
    sup.start()
    get = _endpoints.handle(sup, "GET", "/readyz")  # a body that stays the same while idle
    assert get.status == 200 and get.body

    head = _endpoints.handle(sup, "HEAD", "/readyz")
    assert (head.status, head.headers, head.body) == (200, get.headers, b"")

    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=headers)

    body = b"".join(wsgi_app(sup)({"REQUEST_METHOD": "HEAD", "PATH_INFO": "/readyz"},
                                  start_response))  # fmt: skip
    assert (seen["status"], seen["headers"], body) == ("200 OK", get.headers, b"")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asgi_app(sup)({"type": "http", "method": "HEAD", "path": "/readyz"}, receive, send))
    length = (b"content-length", str(len(get.body)).encode())
    assert length in sent[0]["headers"] and sent[1]["body"] == b""

    assert server.url is not None
    over_http = requests.head(server.url + "/readyz", timeout=5)
    assert over_http.status_code == 200 and over_http.content == b""
    assert over_http.headers["Content-Length"] == str(len(get.body))


def test_the_built_in_server_binds_localhost_and_stops_at_once(make_supervisor) -> None:
    server = StatusServer(port=0)
    sup = make_supervisor(Idle(name="idle"), server)
    sup.start()
    assert server.url is not None and server.url.startswith("http://127.0.0.1:")
    assert requests.get(server.url + "/healthz", timeout=5).json()["healthy"] is True
    assert "bgservices_healthy 1.0" in requests.get(server.url + "/metrics", timeout=5).text
    report = sup.stop()
    assert report.clean and not report.abandoned  # woken at once, not left to the grace
    assert not [t for t in threading.enumerate() if t.name.startswith("bgservices:status")]


def test_registered_subclasses_of_the_built_ins_keep_their_metrics(
    make_supervisor, tmp_path: Path
) -> None:
    @register("test_metrics_warmer")
    class Warmer(CacheWarmer):
        pass

    @register("test_metrics_pinger")
    class Pinger(KeepAlive):
        pass

    @register("test_metrics_memory")
    class Memory(MemoryMonitor):
        pass

    @register("test_metrics_logs")
    class Logs(LogCollector):
        pass

    try:
        sup = make_supervisor(
            Warmer(name="warm", loader=dict),
            Pinger(name="ping", url="http://127.0.0.1:9/"),
            Memory(name="memory", rss_limit_mb=64),
            Logs(name="logs", path=str(tmp_path / "app.log")),
        )
        text = _endpoints.metrics(sup).body.decode()  # read as scraped: not started
    finally:
        for name in ("warmer", "pinger", "memory", "logs"):
            registry._types.pop(f"test_metrics_{name}")
    samples = {(s.name, s.labels["service"]) for f in text_string_to_metric_families(text)
               for s in f.samples if "service" in s.labels}  # fmt: skip
    for sample in (("bgservices_cache_entries", "warm"), ("bgservices_keepalive_up", "ping"),
                   ("bgservices_memory_limit_bytes", "memory"),
                   ("bgservices_log_records_written_total", "logs")):  # fmt: skip
        assert sample in samples


def test_the_keepalive_latency_metric_is_the_last_ping(make_supervisor) -> None:
    class Target(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Target) as target:
        serving = threading.Thread(target=target.serve_forever, args=(0.05,), daemon=True)
        serving.start()
        try:
            url = f"http://127.0.0.1:{target.server_address[1]}/"
            sup = make_supervisor(KeepAlive(name="ping", url=url, interval=60))
            sup.start()
            assert sup.wait_ready(10)
            text = _endpoints.metrics(sup).body.decode()
            last = sup.get("ping", KeepAlive).stats()["latency_last"]
        finally:
            target.shutdown()
            serving.join(5)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [sample] = families["bgservices_keepalive_probe_latency_seconds"].samples
    assert sample.labels == {"service": "ping"} and sample.value == pytest.approx(last, abs=1e-6)


def test_a_failed_setup_leaves_no_listening_socket(
    make_supervisor, monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    def too_many_files() -> NoReturn:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(status_server, "socket", SimpleNamespace(socketpair=too_many_files))
    server = StatusServer(port=unused_port, restart="never")
    sup = make_supervisor(Idle(name="idle"), server)
    sup.start()
    assert server.state is ServiceState.FAILED and server.last_error is not None
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", unused_port), timeout=5),
    ):
        pass
