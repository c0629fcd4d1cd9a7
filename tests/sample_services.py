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


class Crasher(PeriodicService):
    """Fails at once, every time."""

    def run(self) -> None:
        raise RuntimeError("crashes at once")
