"""The ``lease`` option (``Lease``), a held lease (``HeldLease``) and the backend protocol."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._lease_runner import LeaseRunner

__all__ = ["HeldLease", "Lease", "LeaseBackend"]

#: A holder renews every TTL times this...
RENEW_FRACTION = 1 / 3
#: ...and, failing to, considers the lease lost this far into the TTL after its last renewal
#: began: the rest of the TTL is the margin for clock rates and for run() to wind down.
DEADLINE_FRACTION = 2 / 3
_URL_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass
class HeldLease:
    """One acquisition of a lease: what the backend handed out, and what it needs to renew it.

    *token* is the fencing token: larger than every earlier one for *key*.
    *acquired_at* and *last_renewed* are wall-clock times (``time.time()``).
    """

    key: str
    token: int
    acquired_at: float
    last_renewed: float
    handle: Any = None  # the backend's own state (a redis-py Lock, a file descriptor)


@runtime_checkable
class LeaseBackend(Protocol):
    """A store of leases. Calls come from one service's thread and its renewer, never at once.

    ``acquire`` returns a held lease, or None when someone else holds it; ``renew`` returns
    False when the lease is no longer this holder's. Both raise (any exception) when the store
    cannot be reached: the caller retries, and steps down at the renew deadline.
    """

    def acquire(self, key: str, ttl: float) -> HeldLease | None: ...

    def renew(self, lease: HeldLease, ttl: float) -> bool: ...

    def release(self, lease: HeldLease) -> None: ...

    def close(self) -> None: ...


@dataclass
class Lease:
    """The ``lease`` option: where the lease lives, and, while the service runs, its state.

    Give exactly one of *url* (Redis, for a fleet: ``redis://host:6379/0``), *path* (a file
    lock, for the workers of one host) or *backend* (a ``LeaseBackend`` of your own). *key*
    names the lease (``bgservices:lease:<service name>`` by default; the path for a file lock).
    *ttl* is how long a lease outlives a holder that died; *retry_interval* (ttl / 3 by
    default) how often a standby tries to acquire it, jittered.
    """

    url: str | None = None
    path: str | None = None
    key: str = ""
    ttl: float = 15.0
    retry_interval: float | None = None
    backend: Any = None

    def problems(self) -> list[str]:
        """What is wrong with these settings (the ``lease`` option's rule; empty when valid)."""
        found = []
        given = [n for n in ("url", "path", "backend") if getattr(self, n) is not None]
        if len(given) != 1:
            found.append("give exactly one of url (Redis), path (a file lock) or backend")
        if self.url is not None and not self.url.startswith(_URL_SCHEMES):
            found.append(f"url must start with one of {', '.join(_URL_SCHEMES)}")
        if self.backend is not None and not isinstance(self.backend, LeaseBackend):
            found.append("backend must be a LeaseBackend (acquire, renew, release, close)")
        for name in ("ttl", "retry_interval"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value <= 86_400):
                found.append(f"{name} must be > 0 and at most a day (got {value!r})")
        return found

    # -- the live view, while a service runs with it -----------------------------------

    @property
    def held(self) -> bool:
        """True while this service holds the lease."""
        return self._current() is not None

    @property
    def token(self) -> int | None:
        """The fencing token of the current hold: pass it to the store you write to."""
        current = self._current()
        return None if current is None else current.token

    @property
    def acquired_at(self) -> float | None:
        current = self._current()
        return None if current is None else current.acquired_at

    @property
    def last_renewed(self) -> float | None:
        current = self._current()
        return None if current is None else current.last_renewed

    def _current(self) -> HeldLease | None:
        runner: LeaseRunner | None = getattr(self, "_runner", None)
        return None if runner is None else runner.current

    @property
    def renew_every(self) -> float:
        return self.ttl * RENEW_FRACTION

    @property
    def renew_deadline(self) -> float:
        """Seconds after a renewal began by which the next must succeed, or the holder steps
        down; shorter than the TTL by the margin."""
        return self.ttl * DEADLINE_FRACTION

    @property
    def retry_every(self) -> float:
        return self.retry_interval if self.retry_interval is not None else self.ttl / 3
