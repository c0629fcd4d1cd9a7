"""Opt-in SIGINT/SIGTERM handling: a first signal stops gracefully, a second exits at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._stacks import all_stacks

__all__ = ["SignalHandlers", "force_exit"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalHandlers:
    """Installs handlers in the main thread and puts the previous ones back on ``restore()``."""

    def __init__(self, on_first: Callable[[int], None]) -> None:
        self._on_first = on_first
        self._previous: dict[int, Any] = {}
        self.received: int | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            self._on_first(signum)
            return
        force_exit(signum)


def force_exit(signum: int) -> None:
    """A second signal: show where every thread is, then exit at once with 128+signum."""
    try:
        name = signal.Signals(signum).name
        sys.stderr.write(f"bgservices: second {name}, exiting now. Thread stacks:\n{all_stacks()}")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(128 + signum)
