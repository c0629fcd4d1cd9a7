"""``LogCollector``: take log records off the application's threads and write them in batches."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import IO, Any, ClassVar, Literal

from ..errors import Problem
from ..health import HealthCheck
from ..options import option
from ..service import Service
from ._logfile import SharedLogFile
from ._logrender import Captured, Renderer

__all__ = ["LogCollector"]

_STOP: Any = object()  # queued by a stop request, after every record accepted before it
_BATCH = 2048
_DROP_MEMORY = 60.0  # seconds a drop keeps the collector degraded


class LogCollector(Service):
    """Collects stdlib and structlog records through a queue and writes them from its thread.

    Critical, not daemon-safe: the last records before an exit are the ones that explain it,
    so on stop it detaches its handler, drains everything queued, writes and closes; the
    supervisor stops it after every other service (``stop_last``). Logging threads never wait
    on I/O: the handler captures the message as it is at the call and enqueues it; this
    thread renders JSON (or console) lines and writes each batch with one ``write()``.
    """

    type_name = "log_collector"

    #: Stopped after every other service and the daemon-safe ones' grace, so that their
    #: teardown records and the supervisor's final events still reach the file.
    stop_last: ClassVar[bool] = True

    path: str | None = option(default=None, help="File to write (size-rotated).")
    max_bytes: int = option(
        default=10 * 1024 * 1024, ge=0, help="Rotate the file past this size; 0: never."
    )
    backups: int = option(default=5, ge=0, help="Rotated files to keep.")
    stream: Literal["stdout", "stderr"] | None = option(
        default=None, help="Also write to this stream."
    )
    format: Literal["json", "console"] = option(
        default="json", help="JSON lines, or console lines."
    )
    loggers: list[str] = option(
        default=[""], help="Logger names to collect from ('' is the root logger)."
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = option(
        default="DEBUG", help="Lowest level collected (loggers' own levels still apply)."
    )
    max_queue: int = option(
        default=0, ge=0, help="Most records waiting to be written; 0: no bound."
    )
    on_full: Literal["block", "drop"] = option(
        default="block", help="When the queue is full: block the logging thread, or drop and count."
    )

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        problems = super().check_options(values)
        if values.get("path") is None and values.get("stream") is None:
            problems.append(Problem("path", "give a path, a stream, or both"))
        return problems

    def init_state(self) -> None:
        super().init_state()
        previous: _Intake | None = getattr(self, "_intake", None)
        if previous is not None:  # a new launch, or a forked child: the old one must go quiet
            previous.close()
        inherited: SharedLogFile | None = getattr(self, "_file", None)
        if inherited is not None:  # only in a forked child: teardown closes it otherwise
            inherited.close()
        self._renderer = Renderer(self.format)
        self._intake = _Intake(
            self._renderer,
            getattr(logging, self.level),
            self.max_queue,
            self.on_full == "drop",
            self.loggers,
            lambda: self.clock.monotonic(),  # read at each drop: a launch may change the clock
        )
        self._file: SharedLogFile | None = None
        self.written = 0

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full (``on_full="drop"``) or after a stop."""
        return self._intake.dropped

    # -- life cycle (service thread) ------------------------------------------------------

    def setup(self) -> None:
        if self.path is not None and self._file is None:
            self._file = SharedLogFile(self.path, self.max_bytes, self.backups)
        self._intake.attach(threading.get_ident())

    def run(self) -> None:
        intake = self._intake
        get, get_nowait = intake.queue.get, intake.queue.get_nowait
        while True:
            batch = [get()]  # blocks without polling: no CPU while idle
            try:
                while len(batch) < _BATCH:
                    batch.append(get_nowait())
            except queue.Empty:
                pass
            intake.made_room()
            if self._write(batch):
                return

    def on_stop_requested(self) -> None:
        self._intake.detach()
        self._intake.queue.put(_STOP)

    def teardown(self) -> None:
        intake = self._intake
        intake.detach()
        try:
            self._write(intake.drain())
            if self.stopping:  # else a restart attaches it again
                intake.close()  # from here on, a record still in flight is counted as dropped
                self._write(intake.drain())
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _write(self, batch: list[Any]) -> bool:
        """Render and write *batch* in one go; True if it held the stop marker."""
        render = self._renderer.render
        lines = [render(item) for item in batch if item is not _STOP]
        if lines:
            if self._file is not None:
                self._file.write(lines)
            if self.stream is not None:
                out: IO[str] = sys.stdout if self.stream == "stdout" else sys.stderr
                out.write(b"".join(lines).decode("utf-8", "replace"))
                out.flush()
            self.written += len(lines)
        return len(lines) != len(batch)

    def check_health(self) -> HealthCheck | None:
        """Degraded while dropping records (any dropped in the last minute) or while the
        queue is more than 90 % full."""
        reasons = []
        last_drop_at = self._intake.last_drop_at
        if last_drop_at is not None and self.clock.monotonic() - last_drop_at < _DROP_MEMORY:
            reasons.append(f"dropping records ({self.dropped} dropped)")
        depth = self._intake.queue.qsize()
        if self.max_queue and depth > 0.9 * self.max_queue:
            reasons.append(f"queue {depth}/{self.max_queue} full")
        return HealthCheck.degraded(*reasons) if reasons else None

    def summary(self) -> str:
        """One line for status tables: records written and dropped."""
        return f"written={self.written} dropped={self.dropped}"

    def stats(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "dropped": self.dropped,
            "queue_depth": self._intake.queue.qsize(),
            "path": self.path,
        }


_open_intakes: weakref.WeakSet[_Intake] = weakref.WeakSet()


class _Intake(logging.Handler):
    """The handler on the collected loggers: captures each record and queues it.

    It takes no lock on the common path (the queue is thread-safe), bounds the queue with a
    size check rather than a per-record semaphore, and skips a record it has just accepted
    on this thread, which is what a record logged below two collected loggers (one the
    other's ancestor) looks like. A plain record is queued as its finished line. In a forked
    child it is closed and detached at once: the child has no writer thread, so it must
    neither block nor queue the parent's records.
    """

    def __init__(
        self,
        renderer: Renderer,
        level: int,
        max_queue: int,
        drop: bool,
        names: list[str],
        monotonic: Callable[[], float],
    ) -> None:
        super().__init__(level)
        self._prepare = renderer.accept
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.dropped = 0
        self.last_drop_at: float | None = None  # monotonic(), when the last record was dropped
        self._monotonic = monotonic
        self._max_queue, self._drop = max_queue, drop
        self._names = names
        self._loggers: list[logging.Logger] = []
        self._room = threading.Condition(threading.Lock())  # producers wait on it for room
        self._waiting = 0
        self._closed = False
        self._writer: int | None = None
        self._seen = threading.local() if _nested(names) else None
        self._pid = os.getpid()
        _open_intakes.add(self)

    # -- producer side (any thread) -------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or self._closed:
            return False
        if self.filters:
            passed = self.filter(record)
            if not passed:
                return False
            if isinstance(passed, logging.LogRecord):  # 3.12+: a filter may replace it
                record = passed
        seen = self._seen
        if seen is not None:
            if getattr(seen, "record", None) is record:
                return False
            seen.record = record
        self.accept(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.accept(record)

    def accept(self, record: logging.LogRecord) -> None:
        item = self._prepare(record)
        if self._max_queue and self.queue.qsize() >= self._max_queue and not self._wait():
            with self._room:
                self.dropped += 1
                self.last_drop_at = self._monotonic()
            return
        self.queue.put(item)

    def _wait(self) -> bool:
        """Wait for room in the full queue; False if the record must be dropped instead."""
        if self._drop or self._closed or threading.get_ident() == self._writer:
            return False  # the writer's own records never wait for the writer
        with self._room:
            self._waiting += 1
            try:  # detached (a stop began, or the writer crashed): over the bound, not stuck
                while self.queue.qsize() >= self._max_queue and self._loggers and not self._closed:
                    self._room.wait()
            finally:
                self._waiting -= 1
            return not self._closed

    # -- writer side ------------------------------------------------------------------------

    def made_room(self) -> None:
        if self._waiting:
            with self._room:
                self._room.notify_all()

    def attach(self, writer: int) -> None:
        self._writer = writer
        if not self._loggers:
            self._loggers = [logging.getLogger(name or None) for name in self._names]
            for logger in self._loggers:
                logger.addHandler(self)

    def detach(self) -> None:
        loggers, self._loggers = self._loggers, []
        for logger in loggers:
            logger.removeHandler(self)
        if loggers and self._waiting:
            with self._room:
                self._room.notify_all()

    def drain(self) -> list[bytes | Captured]:
        items = []
        try:
            while True:
                item = self.queue.get_nowait()
                if item is not _STOP:
                    items.append(item)
        except queue.Empty:
            return items

    def close(self) -> None:
        """Accept nothing more and wake any blocked producer (its record is counted).

        In a forked child (either at-fork hook may come first) its lock may have been held by
        a thread that does not exist here, and its queue holds the parent's records: both go.
        """
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._room = threading.Condition(threading.Lock())
            self._waiting = 0
            self.queue = queue.SimpleQueue()
        self.detach()
        with self._room:
            self._closed = True
            self._room.notify_all()
        _open_intakes.discard(self)
        super().close()


def _nested(names: list[str]) -> bool:
    """Whether one collected logger is an ancestor of another (so records may arrive twice)."""
    return any(a != b and (a == "" or b.startswith(f"{a}.")) for a in names for b in names)


def _after_fork_in_child() -> None:
    for intake in list(_open_intakes):
        intake.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
