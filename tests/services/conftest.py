"""A real HTTP/1.1 server on 127.0.0.1 that counts the connections its clients open."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class CountingServer:
    """Serves 200 (or ``status``) on 127.0.0.1; can go down and come back on the same port."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.status = 200
        self.seen_headers: list[dict[str, str]] = []
        self._cond = threading.Condition()
        self._open: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep connections open between requests

            def setup(self) -> None:
                super().setup()
                with owner._cond:
                    owner.connections += 1
                    owner._open.add(self.connection)

            def finish(self) -> None:
                with owner._cond:
                    owner._open.discard(self.connection)
                super().finish()

            def _answer(self, body: bytes) -> None:
                with owner._cond:
                    owner.requests += 1
                    owner.seen_headers.append(dict(self.headers))
                    owner._cond.notify_all()
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()

            def do_HEAD(self) -> None:
                self._answer(b"ok")

            def do_GET(self) -> None:
                self._answer(b"ok")
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut every open connection, as a crashed server would."""
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        with self._cond:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._server = None

    def wait_requests(self, count: int, timeout: float = 10) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.requests >= count, timeout), self.requests


@pytest.fixture
def http_server() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    if server._server is not None:
        server.stop()
