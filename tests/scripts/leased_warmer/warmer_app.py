"""The WSGI app: ``/`` answers ``pid role value``. In every worker a second service writes
the same line to ``REPORTS/<pid>`` every 50 ms, so a test sees every worker's reads."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from bgservices import PeriodicService, Supervisor
from bgservices.services import CacheWarmer

supervisor: Supervisor | None = None
warmer: CacheWarmer | None = None


def load() -> dict[str, Any]:
    with open(os.environ["LOADS"], "a") as out:  # O_APPEND: one line per write, whole
        out.write(f"{os.getpid()} {time.time()}\n")
    return {"answer": 42}


def _line() -> str:
    assert warmer is not None
    role = warmer.status()["lease"]["role"]
    return f"{os.getpid()} {role} {warmer.cache.get('answer')}\n"


class Reporter(PeriodicService):
    interval = 0.05

    def tick(self) -> None:
        reports, pid = os.environ["REPORTS"], str(os.getpid())
        partial = os.path.join(reports, f".{pid}")
        with open(partial, "w") as out:
            out.write(_line())
        os.replace(partial, os.path.join(reports, pid))


def start() -> None:
    global supervisor, warmer
    url = os.environ.get("LEASE_URL")
    if url:
        from bgservices.services import RedisCache

        lease: dict[str, Any] = {"url": url, "key": "warmer", "ttl": 1.0, "retry_interval": 0.2}
        backend = RedisCache(url, near_ttl=0.1)
        warmer = CacheWarmer(name="warmer", loader=load, interval=0.2, lease=lease, backend=backend)
    else:
        lease = {"path": os.environ["LEASE_PATH"], "retry_interval": 0.2}
        warmer = CacheWarmer(name="warmer", loader=load, interval=0.2, lease=lease)
    supervisor = Supervisor([warmer, Reporter()])
    supervisor.start()


def stop() -> None:
    if supervisor is not None:
        supervisor.stop()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = _line().encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
