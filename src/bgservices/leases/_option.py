"""The ``lease`` option: a msgspec Struct, so a config's mapping is checked field by field and
an unknown key (a typo) is refused. Imported on first use (``bgservices.leases.Lease``), when
options are first validated, so that ``import bgservices`` does not import msgspec."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

from ._spec import HeldLease, LeaseBackend

if TYPE_CHECKING:
    from .._lease_runner import LeaseRunner

__all__ = ["Lease"]

#: A holder renews every TTL times this...
RENEW_FRACTION = 1 / 3
#: ...and, failing to, considers the lease lost this far into the TTL after its last renewal
#: began: the rest of the TTL is the margin for clock rates and for run() to wind down.
DEADLINE_FRACTION = 2 / 3
_URL_SCHEMES = ("redis://", "rediss://", "unix://")


class Lease(msgspec.Struct, dict=True, forbid_unknown_fields=True):
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
