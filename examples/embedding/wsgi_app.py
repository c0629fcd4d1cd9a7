"""The WSGI application gunicorn.conf.py serves; each worker counts its requests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bgservices import Service, Supervisor, option

supervisor: Supervisor | None = None  # one per worker, made in post_fork


class RequestCounter(Service):
    """Critical: the worker's request count must be saved when the worker stops."""

    directory: str = option(help="Where to save the count.")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.count = 0

    def run(self) -> None:
        while not self.wait(3600):
            pass

    def teardown(self) -> None:
        Path(self.directory, f"teardown-{os.getpid()}").write_text(str(self.count))


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    assert supervisor is not None
    counter = supervisor["counter"]
    assert isinstance(counter, RequestCounter)
    counter.count += 1
    body = f"worker {os.getpid()}: {supervisor['counter'].state.value}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
