"""Services the mounted-surface tests drive through files in $BG_DIR (one process each)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bgservices import PeriodicService, Service, Supervisor
from bgservices.services import CacheWarmer

CONTROL = Path(os.environ.get("BG_DIR", "."))


class Flaky(PeriodicService):
    """Ticks fail while $BG_DIR/broken exists; the error holds HTML."""

    interval = 0.05
    failing_after_errors = 2

    def tick(self) -> None:
        if (CONTROL / "broken").exists():
            raise RuntimeError("upstream <script>alert('x')</script> down")


class Looper(Service):
    """Heartbeats while $BG_DIR/stall does not exist."""

    def run(self) -> None:
        while not self.wait(0.02):
            if not (CONTROL / "stall").exists():
                self.heartbeat()


def load_prices() -> dict[str, float]:
    """The first load waits for $BG_DIR/load, so readiness can be watched."""
    while not (CONTROL / "load").exists():
        time.sleep(0.02)
    return {"apple": 1.2}


def build() -> Supervisor:
    return Supervisor(
        [
            Flaky(name="flaky"),
            Looper(name="looper", stall_after=0.5),
            CacheWarmer(name="prices", interval=60, loader=load_prices),
        ]
    )
