"""A held lease (``HeldLease``) and the backend protocol (``LeaseBackend``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["HeldLease", "LeaseBackend"]


@dataclass
class HeldLease:
    """One acquisition of a lease: what the backend handed out, and what it needs to renew it.

    *token* is the fencing token: larger than every earlier one for *key*.
    *acquired_at* and *last_renewed* are wall-clock times (``time.time()``); a leased service
    sets both from its own clock (``Service.clock``), as its other status times.
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
