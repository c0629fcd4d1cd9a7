"""The states a service goes through, the one table of allowed moves, and lifecycle events."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STRICT", "TRANSITIONS", "VIOLATIONS", "LifecycleEvent", "ServiceState", "disallowed"]


class ServiceState(enum.StrEnum):
    """Where a service is in its life.

    NEW -> STARTING -> RUNNING -> STOPPING -> STOPPED, with FAILED (for good) and BACKOFF
    (waiting to restart, then STARTING again) on the way when something goes wrong. A service
    with a lease waits in STANDBY until it holds it, and goes back there when it steps down.
    """

    NEW = "new"
    STANDBY = "standby"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        """True once the service will not run again without an explicit start."""
        return self in (ServiceState.STOPPED, ServiceState.FAILED)

    @property
    def active(self) -> bool:
        """True while the service's thread is in its life cycle."""
        return self in (
            ServiceState.STANDBY,
            ServiceState.STARTING,
            ServiceState.RUNNING,
            ServiceState.BACKOFF,
            ServiceState.STOPPING,
        )


_S = ServiceState

#: Every allowed move. A move not in this table is a bug in bgservices, never a silent no-op.
TRANSITIONS: Mapping[ServiceState, frozenset[ServiceState]] = {
    _S.NEW: frozenset({_S.STARTING, _S.FAILED}),  # FAILED: its thread could not be started
    # STANDBY: waiting for the lease (from STARTING), or after stepping down (from RUNNING)
    _S.STANDBY: frozenset({_S.STARTING, _S.STOPPING, _S.STOPPED, _S.FAILED}),
    _S.STARTING: frozenset(
        {_S.STANDBY, _S.RUNNING, _S.BACKOFF, _S.STOPPING, _S.STOPPED, _S.FAILED}
    ),
    _S.RUNNING: frozenset({_S.STANDBY, _S.BACKOFF, _S.STOPPING, _S.STOPPED, _S.FAILED}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.STOPPING, _S.STOPPED, _S.FAILED}),
    _S.STOPPING: frozenset({_S.STOPPED, _S.FAILED}),
    _S.STOPPED: frozenset({_S.STARTING, _S.FAILED}),  # relaunched; or its new thread failed
    _S.FAILED: frozenset({_S.STARTING}),
}

#: Set ``BGSERVICES_STRICT=1`` (the test suite does) to make a disallowed move raise
#: ``AssertionError``; otherwise it is reported as a ``service.bad_transition`` error event.
STRICT = os.environ.get("BGSERVICES_STRICT", "") not in ("", "0")
#: Every disallowed move seen in this process, as ``(service, from, to)``; a test suite can
#: assert it stays empty.
VIOLATIONS: list[tuple[str, ServiceState, ServiceState]] = []


def disallowed(service: str, old: ServiceState, new: ServiceState) -> None:
    """Record a move the table does not allow: a bug in bgservices. Raises under STRICT."""
    VIOLATIONS.append((service, old, new))
    if STRICT:
        raise AssertionError(f"service {service!r}: {old.value} -> {new.value} is not allowed")


@dataclass(frozen=True)
class LifecycleEvent:
    """One lifecycle event, as logged and as handed to listeners.

    *event* is the log event name (``service.running``, ``supervisor.straggler``, ...);
    *service* is ``None`` for supervisor-wide events.
    """

    event: str
    service: str | None
    state: ServiceState | None
    time: float
    fields: Mapping[str, Any] = field(default_factory=dict)
