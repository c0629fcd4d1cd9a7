"""A lease on one host: an ``fcntl.flock`` on a file, for the workers of one machine.

The kernel drops the lock when its holder dies, so there is nothing to expire: ``ttl`` is not
used, and renewing only checks that the lock file is still the one locked (a file deleted or
replaced under a holder would let a second process lock a new one). The fencing token is kept
in the lock file itself, written only under the lock.
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
            token = _next_token(fd)
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


def _next_token(fd: int) -> int:
    """Read the last token, write the next one: one more, and at least the time in ms, so that
    tokens keep growing even if the file is deleted and made anew."""
    text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    last = int(text) if text.isdigit() else 0
    token = max(last + 1, time.time_ns() // 1_000_000)
    data = f"{token}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    return token
