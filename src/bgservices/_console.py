"""What the command line shows a person: logging set-up, the status table, the live view.

Shared by ``bgservices run`` and ``bgservices demo``. Unlike the library, this module may
configure logging: a stderr handler on the root logger rendering records with structlog's
``ProcessorFormatter`` (console with colours on a terminal, JSON lines otherwise).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, TextIO

import structlog

from .service import Service
from .supervisor import Supervisor

__all__ = [
    "LOG_LEVELS",
    "ConsoleHandler",
    "LiveStatus",
    "configure_logging",
    "format_table",
    "render_status",
    "run_supervisor",
    "summary_of",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LogFormat = Literal["auto", "console", "json"]

# Daemon-safe services left running at exit are allowed: shown as a plain line, not a warning.
_PLAIN_EVENTS = {"supervisor.abandoned": logging.INFO}
_NOT_FIELDS = ("message", "asctime", "color_message")  # set by other formatters, not fields
_extras = structlog.stdlib.ExtraAdder()


def _event_and_fields(logger: Any, method: str, event_dict: Any) -> Any:
    """A stdlib record's ``event`` attribute is the event; its other extras are the fields."""
    event_dict = _extras(logger, method, event_dict)
    for key in _NOT_FIELDS:
        event_dict.pop(key, None)
    return event_dict


def _plain(logger: Any, method: str, event_dict: Any) -> Any:
    """Render the events of ``_PLAIN_EVENTS`` at their plain level, without a stack."""
    level = _PLAIN_EVENTS.get(event_dict.get("event"))
    if level is not None:
        event_dict.pop("stack", None)
        event_dict["level"] = logging.getLevelName(level).lower()
    return event_dict


def _event_of(record: logging.LogRecord) -> str | None:
    if isinstance(record.msg, dict):  # structlog's event dict (wrap_for_formatter)
        event = record.msg.get("event")
    else:
        event = getattr(record, "event", None)
    return event if isinstance(event, str) else None


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr handler that keeps a live status view intact and shows plain events plainly."""

    #: Set to the status view sharing the terminal: log lines are written above it.
    live: LiveStatus | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        event = _event_of(record)
        level = _PLAIN_EVENTS.get(event) if event else None
        if level is not None and level < self.level:
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        live = self.live
        if live is None:
            super().emit(record)
            return
        with live.above():
            super().emit(record)


def configure_logging(
    level: int | str = logging.INFO, fmt: LogFormat = "auto", stream: TextIO | None = None
) -> ConsoleHandler:
    """Replace the root logger's handlers with one rendering every record on *stream*.

    Records from any library arrive here; bgservices' carry their event name as ``event``
    and each field as an attribute, which become the rendered event and its key/values.
    structlog loggers are routed through stdlib logging, so a ``log_collector`` sees them.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if _isatty(stream) else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(stream))
        final = [_plain, renderer]
    else:
        renderer = structlog.processors.JSONRenderer(default=repr)
        final = [_plain, structlog.processors.format_exc_info, renderer]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = ConsoleHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
            foreign_pre_chain=[*shared, _event_and_fields],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    return handler


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def summary_of(service: Service) -> str:
    """The service's own one-line ``summary()``; a failing one says so instead of raising."""
    try:
        return str(service.summary())
    except Exception as exc:
        return f"summary failed: {exc!r}"


def render_status(services: Iterable[Service]) -> str:
    """A compact table of the services' status, each with its own one-line summary."""
    rows = [("service", "type", "kind", "state", "restarts", "uptime", "summary")]
    for service in services:
        st = service.status()
        uptime = st.get("uptime")
        detail = summary_of(service)
        if st.get("last_error"):
            detail = f"{detail} last_error={st['last_error']['type']}".strip()
        rows.append(
            (
                service.name,
                str(st["type"]).rpartition(":")[2],
                "daemon" if st["daemon"] else "critical",
                str(st["state"]),
                str(st["restarts"]),
                f"{uptime:.1f}s" if uptime is not None else "-",
                detail,
            )
        )
    return format_table(rows)


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """*rows* (the first one the header) as columns two spaces apart; the last column, free
    text, is not padded, and no line ends in blanks."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*map(str.ljust, row[:-1], widths), row[-1]]).rstrip() for row in rows
    )


class LiveStatus:
    """The status table on *out*: redrawn in place on a terminal, appended as lines otherwise.

    In place means: move the cursor up over the last table (``ESC[nA``), clear to the end of
    the screen (``ESC[J``) and draw the new one. Log lines written meanwhile go through
    :meth:`above`, which lifts the table, lets the line out and draws the table again below.
    """

    def __init__(self, out: TextIO, *, in_place: bool | None = None) -> None:
        self.out = out
        self.in_place = _isatty(out) if in_place is None else in_place
        self._lock = threading.RLock()  # guards the screen: the table and the lines above it
        self._shown: list[str] = []  # the lines on screen, in place only
        self._broken = False

    def show(self, table: str) -> None:
        """Draw *table*: replacing the previous one on a terminal, below it otherwise."""
        with self._lock:
            if self.in_place:
                width = shutil.get_terminal_size().columns
                self._erase()
                self._shown = [line[: max(width - 1, 1)] for line in table.splitlines()]
                self._write("".join(line + "\n" for line in self._shown))
            else:
                self._write(table + "\n\n")

    def finish(self, table: str) -> None:
        """The last table, left on screen, followed by nothing that would erase it."""
        with self._lock:
            self._erase()
            self._shown = []
            self._write(table + "\n")

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Write something else to the terminal (a log line) without tearing the table."""
        with self._lock:
            shown = self._shown
            if shown:
                self._erase()
            try:
                yield
            finally:
                if shown:
                    self._write("".join(line + "\n" for line in shown))

    def _erase(self) -> None:
        if self._shown:
            self._write(f"\x1b[{len(self._shown)}A\x1b[J")

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except (BrokenPipeError, ValueError):  # the reader went away: stop showing
            self._broken = True


def run_supervisor(
    sup: Supervisor, duration: float | None, status_every: float, live: LiveStatus
) -> int:
    """``sup.run()`` with the live status every *status_every* seconds and an optional end."""
    done = threading.Event()

    def watch() -> None:
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            waits = [status_every] if status_every else []
            if deadline is not None:
                waits.append(max(deadline - time.monotonic(), 0.0))
            if done.wait(min(waits) if waits else None):
                return
            if deadline is not None and time.monotonic() >= deadline:
                sup.request_stop()
                return
            if status_every:
                live.show(render_status(sup))

    watcher = threading.Thread(target=watch, name="bgservices-cli:status", daemon=True)
    watcher.start()
    try:
        return sup.run()
    finally:
        done.set()
        watcher.join(5)
