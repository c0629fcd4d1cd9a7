"""gunicorn config and app in one: each worker runs a LogCollector on the same rotating file.

``gunicorn -c log_workers.py log_workers:app`` with BIND and LOG_PATH in the environment. A
request to ``/N`` logs N lines, ``request <id> <n>``, with the id from the query string.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = 3
supervisor: Any = None
log = logging.getLogger("served")


def post_fork(server: Any, worker: Any) -> None:
    global supervisor
    from bgservices import Supervisor
    from bgservices.services import LogCollector

    log.setLevel(logging.INFO)
    log.propagate = False
    path = os.environ["LOG_PATH"]
    collector = LogCollector(path=path, loggers=["served"], max_bytes=20_000, backups=1000)
    supervisor = Supervisor([collector])
    supervisor.start()
    print(f"worker {os.getpid()}: collecting", file=sys.stderr, flush=True)


def worker_exit(server: Any, worker: Any) -> None:
    if supervisor is not None:
        supervisor.stop()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    lines = int(environ["PATH_INFO"].strip("/") or 0)
    request = environ["QUERY_STRING"]
    for n in range(lines):
        log.info("request %s %d %s", request, n, "x" * (n % 40))
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
