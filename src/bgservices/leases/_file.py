"""A lease on one host: an ``fcntl.flock`` on a file, for the workers of one machine.

The kernel drops the lock when its holder dies, so there is nothing to expire: ``ttl`` is not
used, and renewing only checks that the lock file is still the one locked (a file deleted or
replaced under a holder would let a second process lock a new one). The fencing token comes
from a counter file beside it (``<path>.fence``), taken under that file's own lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from ._spec import HeldLease

__all__ = ["FileLeaseBackend"]


class FileLeaseBackend:
    """Leases as exclusive ``flock`` locks; *key* is the lock file's path."""

    def acquire(self, key: str, ttl: float) -> HeldLease | None:
        directory = os.path.dirname(key)
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            token = _next_token(f"{key}.fence")
        except BaseException:
            os.close(fd)  # closing drops the lock
            raise
        now = time.time()
        return HeldLease(key, token, now, now, handle=fd)

    def renew(self, lease: HeldLease, ttl: float) -> bool:
        fd: int = lease.handle
        try:
            return os.fstat(fd).st_ino == os.stat(lease.key).st_ino
        except FileNotFoundError:
            return False

    def release(self, lease: HeldLease) -> None:
        fd: int | None = lease.handle
        lease.handle = None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        """Nothing to close: each held lease has its own descriptor."""


def _next_token(path: str) -> int:
    """Take the next token from the counter file *path*, under a lock of its own (so it stays
    one counter even if the lease's lock file is replaced): one more than the last, and at
    least the time in ms, so that tokens keep growing even if the counter file is lost."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for one read and one write
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        last = int(text) if text.isdigit() else 0
        token = max(last + 1, time.time_ns() // 1_000_000)
        data = f"{token}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        return token
    finally:
        os.close(fd)
