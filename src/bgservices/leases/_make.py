"""The backend a ``Lease`` names, made on first use (Redis's needs the optional package)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._spec import LeaseBackend

if TYPE_CHECKING:
    from ._option import Lease

__all__ = ["backend_for"]


def backend_for(lease: Lease) -> LeaseBackend:
    """The backend *lease* names (a new one for url and path: one per service)."""
    if lease.backend is not None:
        backend: LeaseBackend = lease.backend
        return backend
    if lease.path is not None:
        from ._file import FileLeaseBackend

        return FileLeaseBackend()
    from ._redis import RedisLeaseBackend

    assert lease.url is not None  # Service.check_options guarantees one of the three
    return RedisLeaseBackend(lease.url, timeout=min(1.0, lease.ttl / 6))
