"""``StatusServer``: the status surface over the standard library's HTTP server.

For applications without a web server of their own (``bgservices run --status-port``).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import DoNotRestart
from ..options import option
from ..service import Service
from ..supervisor import Supervisor
from ..web._endpoints import handle

__all__ = ["StatusServer"]


class StatusServer(Service):
    """Serves ``/livez``, ``/readyz``, ``/healthz``, ``/status``, ``/metrics`` and ``/`` (an
    HTML page) for the supervisor it runs under.

    Daemon-safe: it only reads. It binds 127.0.0.1 unless ``host`` says otherwise: the page
    names every service and its errors, so exposing it is a decision to make on purpose.
    Requests are answered in short-lived daemon threads; the server waits on its socket and
    a wake-up pipe, so it uses no CPU while nobody asks.
    """

    type_name = "status_server"
    daemon_safe = True

    host: str = option(default="127.0.0.1", help="Address to bind (127.0.0.1: this machine).")
    port: int = option(default=9101, ge=0, le=65535, help="TCP port; 0 picks a free one.")

    def init_state(self) -> None:
        super().init_state()
        self._server: ThreadingHTTPServer | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        #: The port actually bound (useful with ``port=0``), once set up.
        self.bound_port: int | None = None

    @property
    def url(self) -> str | None:
        """``http://host:port`` once listening."""
        return None if self.bound_port is None else f"http://{self.host}:{self.bound_port}"

    def setup(self) -> None:
        supervisor = self._owner
        if not isinstance(supervisor, Supervisor):
            raise DoNotRestart("status_server must run under a Supervisor")
        with contextlib.ExitStack() as acquired:  # teardown() does not run if setup() raises
            wake = socket.socketpair()
            for sock in wake:
                acquired.callback(sock.close)
            server = ThreadingHTTPServer((self.host, self.port), _handler_for(supervisor))
            acquired.callback(server.server_close)
            server.daemon_threads = True
            self.bound_port = int(server.server_address[1])
            acquired.pop_all()  # set up: teardown() closes them from here on
        self._server, self._wake = server, wake
        self.log.info("status_server.listening", url=self.url)

    def run(self) -> None:
        server, wake = self._server, self._wake
        assert server is not None and wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake[0], selectors.EVENT_READ)
            while not self.stopping:
                for key, _ in selector.select():
                    if key.fileobj is server:
                        server._handle_request_noblock()  # type: ignore[attr-defined]

    def on_stop_requested(self) -> None:
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):
                wake[1].send(b"x")

    def teardown(self) -> None:
        if self._server is not None:
            self._server.server_close()
        for sock in self._wake or ():
            sock.close()
        self._server = self._wake = None

    def stats(self) -> dict[str, Any]:
        return {"url": self.url}


def _handler_for(supervisor: Supervisor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bgservices"

        def _answer(self) -> None:
            response = handle(supervisor, self.command, self.path.split("?", 1)[0])
            self.send_response(response.status)
            for key, value in response.headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(response.body)  # empty for HEAD

        do_GET = do_HEAD = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # access logs would flood the application's logs; nothing to record

    return Handler
