"""Shared fixtures. Every test must leave no bgservices thread and no changed signal handler;
logger levels and propagation a test changed are put back."""

from __future__ import annotations

import os

os.environ["BGSERVICES_STRICT"] = "1"  # a disallowed state move raises, here and in subprocesses

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bgservices import LifecycleEvent, Supervisor, state


def _logger_settings() -> dict[str, tuple[int, bool]]:
    loggers = [logging.root, *logging.root.manager.loggerDict.values()]
    return {
        logger.name: (logger.level, logger.propagate)
        for logger in loggers
        if isinstance(logger, logging.Logger)
    }


@pytest.fixture(autouse=True)
def hygiene() -> Iterator[None]:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    levels = _logger_settings()
    yield
    for name in _logger_settings():  # levels and propagation a test changed: put back
        logger = logging.root if name == "root" else logging.getLogger(name)
        logger.level, logger.propagate = levels.get(name, (logging.NOTSET, True))
    logging.root.manager._clear_cache()  # isEnabledFor() caches answers per logger
    leftovers = [t for t in threading.enumerate() if t.name.startswith("bgservices:")]
    for thread in leftovers:
        thread.join(2.0)
    alive = [t.name for t in leftovers if t.is_alive()]
    changed = [s.name for s, h in handlers.items() if signal.getsignal(s) is not h]
    assert not alive, f"test left service threads running: {alive}"
    assert not state.VIOLATIONS, f"disallowed state moves: {state.VIOLATIONS}"
    assert not changed, f"test left signal handlers changed: {changed}"


class Recorder:
    """Collects lifecycle events and lets a test wait for one, bounded."""

    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: LifecycleEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def names(self, service: str | None = None) -> list[str]:
        with self._cond:
            return [e.event for e in self.events if service is None or e.service == service]

    def wait_for(self, predicate: Callable[[LifecycleEvent], bool], timeout: float = 5.0) -> Any:
        with self._cond:
            found: list[LifecycleEvent] = []

            def seen() -> bool:
                found[:] = [e for e in self.events if predicate(e)]
                return bool(found)

            assert self._cond.wait_for(seen, timeout), f"no such event in {self.names()}"
            return found[0]

    def wait_event(self, name: str, service: str | None = None, timeout: float = 5.0) -> Any:
        return self.wait_for(
            lambda e: e.event == name and (service is None or e.service == service), timeout
        )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_supervisor(recorder: Recorder) -> Iterator[Callable[..., Supervisor]]:
    """Build supervisors that record events and are always stopped after the test."""
    made: list[Supervisor] = []

    def make(*services: Any, **kwargs: Any) -> Supervisor:
        kwargs.setdefault("shutdown_timeout", 5.0)
        sup = Supervisor(services, **kwargs)
        sup.add_listener(recorder)
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.stop()


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
