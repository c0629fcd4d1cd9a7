"""The states a service goes through, and the events that report each change."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LifecycleEvent", "ServiceState"]


class ServiceState(enum.StrEnum):
    """Where a service is in its life.

    NEW -> STARTING -> RUNNING -> STOPPING -> STOPPED, with FAILED (for good) and BACKOFF
    (waiting to restart, then STARTING again) on the way when something goes wrong.
    """

    NEW = "new"
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
            ServiceState.STARTING,
            ServiceState.RUNNING,
            ServiceState.BACKOFF,
            ServiceState.STOPPING,
        )


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
