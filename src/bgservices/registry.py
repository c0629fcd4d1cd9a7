"""Short type names for services (``memory_monitor``), used by the dict config and the CLI.

Built-ins register themselves when ``bgservices.services`` is imported, which happens on the
first lookup, not at ``import bgservices``. Third-party packages register with the
:func:`register` decorator or an entry point in the ``bgservices.services`` group.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TypeVar

from .service import Service

__all__ = ["ENTRY_POINT_GROUP", "lookup", "register", "registered"]

ENTRY_POINT_GROUP = "bgservices.services"
S = TypeVar("S", bound=type[Service])

_types: dict[str, type[Service]] = {}
_loaded = False
_load_lock = threading.Lock()


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make a ``Service`` subclass available as ``type: name`` in config."""

    def decorate(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise TypeError(f"register({name!r}) needs a Service subclass, got {cls!r}")
        existing = _types.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"service type {name!r} is already registered to {existing!r}")
        cls.type_name = name
        _types[name] = cls
        return cls

    return decorate


def registered() -> dict[str, type[Service]]:
    """Every registered type by name: built-ins, entry points, and decorated classes."""
    _load()
    return dict(sorted(_types.items()))


def lookup(name: str) -> type[Service] | None:
    """The class registered as *name*, or None."""
    if name not in _types:
        _load()
    return _types.get(name)


def _load() -> None:
    global _loaded
    with _load_lock:
        if _loaded:
            return
        _loaded = True
    from importlib.metadata import entry_points  # slow to import: only when types are looked up

    importlib.import_module("bgservices.services")
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _types:
            continue
        try:
            cls = entry.load()
            register(entry.name)(cls)
        except Exception as exc:  # a broken plugin must not break configuration
            import structlog

            structlog.get_logger("bgservices").warning(
                "registry.entry_point_failed", entry_point=entry.name, error=repr(exc)
            )
