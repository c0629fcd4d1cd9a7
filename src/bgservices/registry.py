"""Short type names for services (``memory_monitor``), used by the dict config and the CLI.

The built-ins are listed below as import paths, imported on their first lookup: the core never
imports ``bgservices.services``, and ``import bgservices`` stays light. Packages register with
the :func:`register` decorator or an entry point in the ``bgservices.services`` group.
Lookups are thread-safe: loading happens under a lock, so a concurrent first lookup waits for
it instead of finding an empty table.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from .service import Service

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "lookup", "register", "registered"]

ENTRY_POINT_GROUP = "bgservices.services"
#: The built-in types, ``name -> "module:Class"``; each class also says its ``type_name``.
BUILTINS: dict[str, str] = {
    "cache_warmer": "bgservices.services.cache:CacheWarmer",
    "keep_alive": "bgservices.services.keepalive:KeepAlive",
    "log_collector": "bgservices.services.logs:LogCollector",
    "memory_monitor": "bgservices.services.memory:MemoryMonitor",
    "status_server": "bgservices.services.status_server:StatusServer",
}
S = TypeVar("S", bound=type[Service])

_types: dict[str, type[Service]] = {}
_lock = threading.RLock()  # reentrant: loading a plugin may run @register
_loaded = False


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make a ``Service`` subclass available as ``type: name`` in config."""

    def decorate(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise TypeError(f"register({name!r}) needs a Service subclass, got {cls!r}")
        with _lock:
            if name in BUILTINS and cls.__module__ != BUILTINS[name].partition(":")[0]:
                _load_builtin(name)  # so that the name is seen as taken
            existing = _types.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"service type {name!r} is already registered to {existing!r}")
            cls.type_name = name
            _types[name] = cls
        return cls

    return decorate


def registered() -> dict[str, type[Service]]:
    """Every registered type by name: built-ins, entry points, and decorated classes."""
    with _lock:
        for name in BUILTINS:
            _load_builtin(name)
        _load_plugins()
        return dict(sorted(_types.items()))


def lookup(name: str) -> type[Service] | None:
    """The class registered as *name*, or None."""
    found = _types.get(name)  # a dict read is atomic: no lock once a type is there
    if found is not None:
        return found
    with _lock:
        if name in BUILTINS:
            _load_builtin(name)
        else:
            _load_plugins()
        return _types.get(name)


def _load_builtin(name: str) -> None:
    if name in _types:
        return
    module, _, attr = BUILTINS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.type_name != name:
        raise RuntimeError(f"{BUILTINS[name]} says type_name={cls.type_name!r}, not {name!r}")
    _types[name] = cls


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points  # slow to import: only when types are looked up

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _types or entry.name in BUILTINS:
            continue
        try:
            register(entry.name)(entry.load())
        except Exception as exc:  # a broken plugin must not break configuration
            logging.getLogger("bgservices.registry").warning(
                "registry.entry_point_failed entry_point=%s error=%r",
                entry.name,
                exc,
                extra={"event": "registry.entry_point_failed", "entry_point": entry.name},
            )
