"""Structured events as stdlib log records, for the library's events and services' ``self.log``.

The library never configures logging: it hands records to stdlib loggers under its own names
(``bgservices.supervisor``, ``bgservices.service``, one per built-in) and the application
decides where they go. A record keeps its structure three ways at once, so any formatter
renders it sensibly: ``getMessage()`` is ``"event key=value ..."`` (a plain
``logging.Formatter``), the record has an ``event`` attribute and one attribute per field (a
JSON formatter, or structlog's ``ExtraAdder`` in a ``ProcessorFormatter``'s chain).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["LEVELS", "EventMessage", "emit", "service_logger"]

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
#: LogRecord's own attribute names, and ``event``: a field named so is stored with a trailing "_".
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "event"}
)


class EventMessage:
    """A record's ``msg``: the event and its fields, rendered only if a handler formats it."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: Mapping[str, Any]) -> None:
        self.event, self.fields = event, fields

    def __str__(self) -> str:
        parts, blocks = [self.event], []
        for key, value in self.fields.items():
            if isinstance(value, str) and "\n" in value:
                blocks.append(value.rstrip("\n"))  # a stack or traceback: on its own lines
            elif isinstance(value, str) and value and " " not in value:
                parts.append(f"{key}={value}")
            else:
                parts.append(f"{key}={value!r}")
        return "\n".join([" ".join(parts), *blocks])


def emit(
    logger: logging.Logger,
    level: int,
    event: str,
    fields: Mapping[str, Any],
    exc: BaseException | None = None,
) -> None:
    """Log *event* with *fields* as one record if *logger* takes *level*. Never raises.

    The enabled check comes first, so an event nobody logs costs one method call.
    """
    try:
        if logger.isEnabledFor(level):
            logger.log(
                level, EventMessage(event, fields), extra=_extra(event, fields), exc_info=exc
            )
    except Exception as error:  # a broken handler must not break the life cycle
        _say(f"bgservices: could not log {event}: {error!r}")


def _extra(event: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    extra = {"event": event}
    for key, value in fields.items():
        extra[f"{key}_" if key in _RECORD_ATTRIBUTES else key] = value
    return extra


def _say(text: str) -> None:
    with contextlib.suppress(Exception):  # stderr itself may be gone (shutdown, closed pipe)
        print(text, file=sys.stderr)


def _drop_disabled(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
    if not logger.isEnabledFor(LEVELS.get(method, logging.CRITICAL)):
        raise structlog.DropEvent
    return event_dict


def _to_record(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog's last processor: the arguments of the stdlib logging call."""
    event = str(event_dict.pop("event", ""))
    args = event_dict.pop("positional_args", ())
    if args:
        event = event % args
    kwargs: dict[str, Any] = {}
    for key in ("exc_info", "stack_info"):
        if key in event_dict:
            kwargs[key] = event_dict.pop(key)
    kwargs["extra"] = _extra(event, event_dict)
    return (EventMessage(event, event_dict),), kwargs


def service_logger(module: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """structlog's bound-logger API over the stdlib logger *module*, bound with *context*.

    It uses its own processors rather than structlog's global configuration, so the library
    works the same whether or not the application configured structlog.
    """
    return structlog.stdlib.BoundLogger(
        logging.getLogger(module), [_drop_disabled, _to_record], context
    )
