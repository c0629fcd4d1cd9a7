"""An append-only, size-rotated log file that several processes can share.

Each batch is written with one ``write()`` on an ``O_APPEND`` descriptor, so lines from
different processes never interleave within a line. Rotation happens under an exclusive
``flock`` on a lock file beside the log (``app.log.lock``); every writer takes that lock for
each batch, checks whether the path still names the file it has open (another process, or
logrotate, may have moved it) and reopens it if not, the way ``WatchedFileHandler`` does. So
exactly one process rotates at a time, and nobody writes into a file after it was rotated.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: one process per file)
    fcntl = None  # type: ignore[assignment]

__all__ = ["SharedLogFile"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC


def _open(path: str) -> int:
    """Created from the umask but never world-writable; a symlink is refused, not followed.

    Rotation renames the path, and a link planted there could make it write or rename
    elsewhere.
    """
    return os.open(path, _FLAGS, 0o664)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SharedLogFile:
    """``path``, rotated past ``max_bytes`` (0: never) keeping ``backups`` old files."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = os.path.abspath(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock_fd = _open(f"{self.path}.lock") if max_bytes and fcntl is not None else None
        self._fd = -1
        self._identity = (0, 0)
        try:
            with self._locked():
                self._reopen()
        except BaseException:
            self.close()
            raise

    def write(self, lines: list[bytes]) -> None:
        """Append *lines* (each ending in a newline), rotating between lines when needed."""
        with self._locked():
            self._follow()
            size = os.fstat(self._fd).st_size if self.max_bytes else 0
            if not self.max_bytes or size + sum(map(len, lines)) <= self.max_bytes:
                _write_all(self._fd, b"".join(lines))
                return
            chunk: list[bytes] = []
            for line in lines:
                if size and size + len(line) > self.max_bytes:
                    _write_all(self._fd, b"".join(chunk))
                    self._rotate()
                    size, chunk = 0, []
                chunk.append(line)
                size += len(line)
            _write_all(self._fd, b"".join(chunk))

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._fd, self._lock_fd = -1, None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _follow(self) -> None:
        """Reopen if the path no longer names our file (rotated elsewhere, or removed)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._reopen()
            return
        if (st.st_dev, st.st_ino) != self._identity:
            self._reopen()

    def _reopen(self) -> None:
        fd = _open(self.path)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        st = os.fstat(fd)
        self._identity = (st.st_dev, st.st_ino)

    def _rotate(self) -> None:
        """``app.log`` -> ``app.log.1`` -> ... -> ``app.log.N``; with no backups, start over."""
        if self.backups:
            for n in range(self.backups - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}.{n}", f"{self.path}.{n + 1}")
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self._reopen()
