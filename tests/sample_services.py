"""Services and callables that configuration tests refer to by import path."""

from __future__ import annotations

from bgservices import PeriodicService


class Heartbeat(PeriodicService):
    daemon_safe = True
    interval = 1.0

    def tick(self) -> None:
        pass


def load_all() -> dict[str, int]:
    return {"a": 1}


NOT_A_SERVICE = 42
