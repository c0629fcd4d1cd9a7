"""Turn a log record into one line: JSON or console, never a broken or missing one.

In the logging thread, :meth:`Renderer.accept` renders a plain record (a string message, no
exception, stack or extra fields) at once, on a fast path that builds its JSON line from
cached pieces, and only captures any other record (:func:`capture`: what could change after the
call). The writer's thread renders those through :meth:`Renderer.event_dict`, whose output for
a plain record is the same dict, so both paths write identical lines. A record that cannot be
rendered at all becomes a placeholder line naming the error, in the collector's format.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Literal

import msgspec

__all__ = ["Captured", "Renderer", "capture", "iso_utc", "safe_repr"]

#: Attributes every LogRecord has on this Python (``taskName`` since 3.12). Not fields either:
#: the two a ``logging.Formatter`` adds to a record it formats, and ``event``, shown as such.
_PLAIN_KEYS = frozenset(logging.makeLogRecord({}).__dict__)
_PLAIN_SIZE = len(_PLAIN_KEYS)
_NOT_FIELDS = _PLAIN_KEYS | {"message", "asctime", "taskName", "event"}
_NOT_FIELDS |= {"_logger", "_name", "_from_structlog", "_record"}  # structlog's plumbing
_CORE = ("timestamp", "level", "logger", "event")
_LEVELS = {name: name.lower() for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


class Unrenderable:
    """Stands for a message whose ``str()`` (or ``%`` with its arguments) raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


#: What the writer needs of a record: the record, its message as at the call, and a copy of
#: its ``__dict__`` when it has extra fields (else None).
Captured = tuple[logging.LogRecord, str | dict[str, Any] | Unrenderable, dict[str, Any] | None]


def capture(record: logging.LogRecord) -> Captured:
    """Freeze what a later change could alter: the message (``msg % args``) and the extras.

    Runs in the logging thread, so it is kept to what a stdlib ``QueueHandler`` does anyway.
    A structlog event dict (``wrap_for_formatter``) is copied, and an ``exc_info=True`` in it
    is resolved here, the only thread where ``sys.exc_info()`` means something.
    """
    msg, args = record.msg, record.args
    message: str | dict[str, Any] | Unrenderable
    try:
        if type(msg) is str:
            message = msg % args if args else msg
        elif type(msg) is dict:
            message = dict(msg)
            if message.get("exc_info") is True:
                message["exc_info"] = sys.exc_info()
        else:
            message = record.getMessage()
    except Exception as exc:
        message = Unrenderable(exc)
    attrs = record.__dict__.copy() if len(record.__dict__) != _PLAIN_SIZE else None
    return (record, message, attrs)


def safe_repr(value: object) -> str:
    """``repr(value)``, or a description of the value if its ``repr`` raises."""
    try:
        return repr(value)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return f"<{type(value).__qualname__} object; repr failed: {type(exc).__qualname__}>"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


def _iso_millis(millis: int) -> str:
    seconds, fraction = divmod(millis, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{fraction:03d}+00:00"


def iso_utc(created: float) -> str:
    """``2026-01-31T12:00:00.123+00:00``: ISO 8601, UTC, always with milliseconds."""
    return _iso_millis(int(created * 1000))


def _format_exc(exc_info: Any) -> str | None:
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[0] is None:
        return None
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


class Renderer:
    """Renders captured records as bytes lines (newline included) in one ``kind``."""

    def __init__(self, kind: Literal["json", "console"]) -> None:
        self.kind = kind
        self._encode = msgspec.json.Encoder(enc_hook=safe_repr).encode
        self._console: Callable[..., str] | None = None
        self._stamp: tuple[int, bytes] = (-1, b"")
        self._middles: dict[tuple[str, str], bytes] = {}
        if kind == "console":
            import structlog

            self._console = structlog.dev.ConsoleRenderer(colors=False)

    def accept(self, record: logging.LogRecord) -> bytes | Captured:
        """In the logging thread: a plain record's finished line, else what :func:`capture` keeps.

        A plain record is rendered at once: it costs the caller about what formatting the
        message costs a stdlib ``QueueHandler``, and what waits in the queue is then a small
        bytes object instead of the record, which keeps the garbage collector's work (and the
        memory a backlog holds) flat.
        """
        msg = record.msg
        if (
            type(msg) is str
            and len(record.__dict__) == _PLAIN_SIZE
            and record.exc_info is None
            and record.stack_info is None
            and self._console is None
        ):
            args = record.args
            try:
                return self._plain(record, msg % args if args else msg)
            except Exception:
                pass  # the general path says what went wrong
        return capture(record)

    def render(self, item: bytes | Captured) -> bytes:
        """One line for *item*; a placeholder line if it cannot be rendered."""
        if isinstance(item, bytes):
            return item
        record, message, attrs = item
        try:
            if (
                attrs is None
                and type(message) is str
                and record.exc_info is None
                and record.stack_info is None
                and self._console is None
            ):
                return self._plain(record, message)
            return self._line(self.event_dict(item))
        except Exception as exc:
            return self._line(self._placeholder(record, exc))

    def _plain(self, record: logging.LogRecord, message: str) -> bytes:
        """The fast path: the JSON line of a plain record, from cached pieces.

        Byte for byte what encoding the general path's dict gives: the time (to the
        millisecond), the level and the logger are encoded once and reused.
        """
        millis = int(record.created * 1000)
        stamp = self._stamp
        if stamp[0] != millis:
            stamp = self._stamp = (millis, b'{"timestamp":"' + _iso_millis(millis).encode())
        key = (record.levelname, record.name)
        middle = self._middles.get(key)
        if middle is None:
            level = _LEVELS.get(record.levelname) or record.levelname.lower()
            middle = b'","level":%s,"logger":%s,"event":' % (
                self._encode(level),
                self._encode(record.name),
            )
            if len(self._middles) > 1000:
                self._middles.clear()
            self._middles[key] = middle
        return stamp[1] + middle + self._encode(message) + b"}\n"

    def render_general(self, item: Captured) -> bytes:
        """The general path alone (what the fast path must equal, for the tests)."""
        return self._line(self.event_dict(item))

    def _line(self, event: dict[str, Any]) -> bytes:
        if self._console is not None:
            return (self._console(None, "", dict(event)).rstrip("\n") + "\n").encode(
                "utf-8", "backslashreplace"
            )
        try:
            return self._encode(event) + b"\n"
        except Exception:  # e.g. a self-referencing value: that field as its repr instead
            return self._encode({k: self._encodable(v) for k, v in event.items()}) + b"\n"

    def _encodable(self, value: Any) -> Any:
        try:
            self._encode(value)
        except Exception:
            return safe_repr(value)
        return value

    def event_dict(self, item: Captured) -> dict[str, Any]:
        """timestamp, level, logger, event, then the structured fields and the exception."""
        record, message, attrs = item
        if isinstance(message, Unrenderable):
            return self._placeholder(record, message.error)
        if isinstance(message, dict):  # a structlog event dict, already through its processors
            event, fields, exc_text = _from_structlog(record, message)
        else:
            event, fields, exc_text = _from_stdlib(record, message, attrs)
        for key, value in fields.items():
            event[f"{key}_" if key in _CORE else key] = value
        if exc_text:
            event["exception"] = exc_text
        if record.stack_info:
            event["stack"] = record.stack_info
        return event

    @staticmethod
    def _placeholder(record: logging.LogRecord, error: BaseException) -> dict[str, Any]:
        """A line that says a record could not be rendered, and why."""
        return {
            "timestamp": iso_utc(getattr(record, "created", time.time())),
            "level": _safe_str(getattr(record, "levelname", "ERROR")).lower(),
            "logger": _safe_str(getattr(record, "name", "?")),
            "event": "unrenderable log record",
            "error": safe_repr(error),
            "msg": safe_repr(getattr(record, "msg", None)),
        }


def _from_structlog(
    record: logging.LogRecord, message: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(core keys, fields, exception text) of a structlog event dict."""
    fields = dict(message)
    event: dict[str, Any] = {
        "timestamp": fields.pop("timestamp", None) or iso_utc(record.created),
        "level": fields.pop("level", None) or record.levelname.lower(),
        "logger": fields.pop("logger", None) or record.name,
        "event": fields.pop("event", None),
    }
    return event, fields, _format_exc(fields.pop("exc_info", None))


def _from_stdlib(
    record: logging.LogRecord, message: Any, attrs: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(core keys, fields, exception text) of a stdlib record and its extra attributes."""
    event: dict[str, Any] = {
        "timestamp": iso_utc(record.created),
        "level": _LEVELS.get(record.levelname) or record.levelname.lower(),
        "logger": record.name,
        "event": message,
    }
    fields: dict[str, Any] = {}
    if attrs is not None:
        if isinstance(attrs.get("event"), str):
            event["event"] = attrs["event"]
        fields = {k: v for k, v in attrs.items() if k not in _NOT_FIELDS}
    return event, fields, record.exc_text or _format_exc(record.exc_info)
