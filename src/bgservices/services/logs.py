"""``LogCollector``: take log records off the application's threads and write them in batches."""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from typing import IO, Any, Literal

from ..errors import Problem
from ..health import HealthCheck
from ..options import option
from ..service import Service, iso_time

__all__ = ["LogCollector"]

_STOP = object()  # queued by a stop request, after every record accepted before it
_BATCH = 2048
_DROP_MEMORY = 60.0  # seconds a drop keeps the collector degraded


class LogCollector(Service):
    """Collects stdlib and structlog records through a queue and writes them from its thread.

    Critical, not daemon-safe: the last records before an exit are the ones that explain it,
    so on stop it detaches its handler, drains everything queued, flushes and closes. Logging
    threads never block on I/O: the handler only enqueues the record, unformatted, so
    structlog event dicts reach the formatter intact; the collector's thread renders them and
    stdlib records the same way (structlog's ``ProcessorFormatter``) and writes each batch
    with one write and one flush. Start it first so that it stops last.
    """

    type_name = "log_collector"

    path: str | None = option(None, help="File to write (size-rotated).")
    max_bytes: int = option(
        10 * 1024 * 1024, ge=0, help="Rotate the file past this size; 0: never."
    )
    backups: int = option(5, ge=0, help="Rotated files to keep.")
    stream: Literal["stdout", "stderr"] | None = option(None, help="Also write to this stream.")
    format: Literal["json", "console"] = option("json", help="JSON lines, or console lines.")
    loggers: list[str] = option([""], help="Logger names to collect from ('' is the root logger).")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = option(
        "DEBUG", help="Lowest level collected (loggers' own levels still apply)."
    )
    max_queue: int = option(0, ge=0, help="Most records waiting to be written; 0: no bound.")
    on_full: Literal["block", "drop"] = option(
        "block", help="When the queue is full: block the logging thread, or drop and count."
    )

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        problems = super().check_options(values)
        if values.get("path") is None and values.get("stream") is None:
            problems.append(Problem("path", "give a path, a stream, or both"))
        return problems

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(self.max_queue) if self.max_queue else None
        self._handler = _EnqueueHandler(self, getattr(logging, self.level))
        self._drop_lock = threading.Lock()
        self.written = 0
        self.dropped = 0

    def init_state(self) -> None:
        super().init_state()
        self._file: logging.handlers.RotatingFileHandler | None = None
        self._formatter: logging.Formatter | None = None
        self._drain_thread: int | None = None
        self._attached: list[logging.Logger] = []

    # -- producer side (any thread) -------------------------------------------------------

    def _accept(self, record: logging.LogRecord) -> None:
        slots = self._slots
        if slots is not None:
            must_not_block = self.on_full == "drop" or threading.get_ident() == self._drain_thread
            if not slots.acquire(blocking=not must_not_block):
                with self._drop_lock:
                    self.dropped += 1
                return
        self._queue.put(record)

    # -- life cycle (service thread) ------------------------------------------------------

    def setup(self) -> None:
        self._formatter = _formatter(self.format)
        if self.path is not None:
            self._file = _SafeRotatingFileHandler(
                self.path, maxBytes=self.max_bytes, backupCount=self.backups, encoding="utf-8"
            )
        self._drain_thread = threading.get_ident()
        self._attached = [logging.getLogger(name or None) for name in self.loggers]
        for logger in self._attached:
            logger.addHandler(self._handler)

    def run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            batch = [get()]  # blocks without polling: no CPU while idle
            try:
                while len(batch) < _BATCH:
                    batch.append(get_nowait())
            except queue.Empty:
                pass
            if self._write(batch):
                return

    def on_stop_requested(self) -> None:
        self._detach()
        self._queue.put(_STOP)

    def teardown(self) -> None:
        self._detach()
        leftovers = []
        try:
            while True:
                leftovers.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        try:
            self._write(leftovers)
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _detach(self) -> None:
        for logger in self._attached:
            logger.removeHandler(self._handler)
        self._attached = []

    def _write(self, batch: list[Any]) -> bool:
        """Render and write *batch* in one go; True if it held the stop marker."""
        records = [item for item in batch if item is not _STOP]
        if records:
            formatter = self._formatter or _formatter(self.format)
            rendered = [f"{_render(formatter, record)}\n" for record in records]
            if self._file is not None:
                self._write_file(self._file, rendered)
            if self.stream is not None:
                out: IO[str] = sys.stdout if self.stream == "stdout" else sys.stderr
                out.write("".join(rendered))
                out.flush()
            self.written += len(records)
            if self._slots is not None:
                for _ in records:
                    self._slots.release()
        return len(records) != len(batch)

    @staticmethod
    def _write_file(sink: logging.handlers.RotatingFileHandler, lines: list[str]) -> None:
        """Write *lines* with as few writes as rotation allows, then flush once."""
        stream = sink.stream
        assert stream is not None  # opened in setup, closed only in teardown
        size, chunk = stream.tell(), list[str]()
        for line in lines:
            if sink.maxBytes and size and size + len(line) > sink.maxBytes:
                stream.write("".join(chunk))
                sink.doRollover()
                stream = sink.stream
                assert stream is not None
                size, chunk = 0, []
            chunk.append(line)
            size += len(line)
        stream.write("".join(chunk))
        stream.flush()

    def check_health(self) -> HealthCheck | None:
        """Degraded while dropping records (any dropped in the last minute) or while the
        queue is more than 90 % full."""
        now = time.monotonic()
        seen, at = getattr(self, "_drops_seen", (0, -_DROP_MEMORY))
        if self.dropped != seen:
            seen, at = self._drops_seen = (self.dropped, now)
        reasons = []
        if seen and now - at < _DROP_MEMORY:
            reasons.append(f"dropping records ({self.dropped} dropped)")
        depth = self._queue.qsize()
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
            "queue_depth": self._queue.qsize(),
            "path": self.path,
        }


class _SafeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates files from the umask but never world-writable, and never through a symlink.

    A log path that is a symlink is refused (``O_NOFOLLOW``) rather than followed: rotation
    renames the path, and a link planted there could make it write or rename elsewhere.
    """

    def _open(self) -> Any:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        return open(
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=lambda path, _: os.open(path, flags, 0o664),
        )


class _EnqueueHandler(logging.Handler):
    """Hands records to the collector; takes no lock of its own (the queue is thread-safe)."""

    def __init__(self, collector: LogCollector, level: int) -> None:
        super().__init__(level)
        self._collector = collector

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level and self.filter(record):
            self._collector._accept(record)
            return True
        return False

    def emit(self, record: logging.LogRecord) -> None:
        self._collector._accept(record)


def _record_time(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Timestamp a stdlib record with the time it was logged, not the time it is written."""
    record = event.get("_record")
    if record is not None:
        event.setdefault("timestamp", iso_time(record.created))
    return event


def _formatter(kind: str) -> logging.Formatter:
    import structlog

    renderer: Any = (
        structlog.processors.JSONRenderer()
        if kind == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if kind == "json":
        processors.append(structlog.processors.format_exc_info)
    processors.append(renderer)
    return structlog.stdlib.ProcessorFormatter(
        processors=processors,
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _record_time,
        ],
    )


def _render(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    try:
        return formatter.format(record)
    except Exception as exc:  # a broken record is written as such, never silently lost
        return f"bgservices: unformattable record from {record.name}: {exc!r} ({record.msg!r})"
