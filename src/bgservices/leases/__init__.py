"""Leases: run a service in one place at a time, across workers (a file lock) or hosts (Redis).

A leased service waits in STANDBY until it holds its lease, runs while it holds it, renews it
in the background, and steps down before the lease could expire under it. Each acquisition
carries a fencing token larger than every earlier one for that key, so a store can refuse a
late write from a holder that has lost the lease.

``Lease`` is the ``lease`` option of every service; ``LeaseBackend`` is what a store must offer
(``FileLeaseBackend`` for one host, ``RedisLeaseBackend`` for a fleet, imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._make import backend_for
from ._spec import HeldLease, LeaseBackend

if TYPE_CHECKING:
    from ._file import FileLeaseBackend
    from ._option import Lease
    from ._redis import RedisLeaseBackend

__all__ = [
    "FileLeaseBackend",
    "HeldLease",
    "Lease",
    "LeaseBackend",
    "RedisLeaseBackend",
    "backend_for",
]


def __getattr__(name: str) -> Any:
    """Imported on first use: ``Lease`` imports msgspec, Redis's backend the ``redis`` package."""
    if name == "Lease":
        from ._option import Lease

        return Lease
    if name == "FileLeaseBackend":
        from ._file import FileLeaseBackend

        return FileLeaseBackend
    if name == "RedisLeaseBackend":
        from ._redis import RedisLeaseBackend

        return RedisLeaseBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
