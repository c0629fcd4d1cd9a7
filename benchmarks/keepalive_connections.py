"""TCP connections opened for 100 pings: ``KeepAlive``'s one session vs ``requests.get``.

Both ping a local HTTP/1.1 server on 127.0.0.1 that counts the connections it accepts.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from bgservices import Supervisor
from bgservices.services import KeepAlive

from ._common import Result, standalone


class _Health(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.pings.release()  # type: ignore[attr-defined]

    do_GET = do_HEAD

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """Counts accepted connections, and pings through a semaphore one can wait on."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Health)
        self.accepted = 0
        self.pings = threading.Semaphore(0)

    def get_request(self) -> Any:
        request = super().get_request()
        self.accepted += 1
        return request


def measure(pings: int) -> tuple[int, int]:
    server = _Server()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    try:
        with Supervisor([KeepAlive(url=url, interval=0.001)], stop_at_exit=False):
            for _ in range(pings):
                assert server.pings.acquire(timeout=10)
        ours = server.accepted
        server.accepted = 0
        for _ in range(pings):
            requests.get(url, timeout=5)
        return ours, server.accepted
    finally:
        server.shutdown()
        server.server_close()


def run(quick: bool = False) -> list[Result]:
    ours, peer = measure(100)
    return [
        Result(
            name="TCP connections opened for 100 pings",
            unit="connections",
            ours=ours,
            peers={"requests.get per ping": peer},
            ratio=peer / ours,
            target="1 vs 100",
        )
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
