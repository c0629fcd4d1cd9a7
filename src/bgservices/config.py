"""Build a supervisor from a plain dict (or a TOML/JSON file), validating everything first.

Every problem is collected with its dotted path before any service is constructed, and
reported together in one ``ConfigError``. The dict's service options are validated against
the same declarations, and the same rules, as the service constructors. Nothing but
``ConfigError`` escapes: tables are read through plain ``str`` keys, values are shown in
messages through a repr that cannot fail, and nesting and cycles are bounded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import _deps
from ._rules import validate_service_options
from ._saferepr import describe_error, safe_repr, safe_str, type_name
from ._validate import IMPORT_PATH, import_object, suggest, validate_options
from .errors import ConfigError, Problem
from .registry import lookup, registered
from .service import Service
from .supervisor import Supervisor, SupervisorSettings

__all__ = ["from_config", "load_config", "validate_config"]

VERSION = 1
_TOP_KEYS = ("version", "supervisor", "services")
_NO_SERVICES = (
    "no services configured: add at least one, each with a type "
    "(a registered name or 'module:Class')"
)

Built = tuple[str, type[Service], dict[str, Any]]


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.toml`` or ``.json`` file into a dict; ``ConfigError`` on any problem."""
    from pathlib import Path

    path = Path(path)
    where = str(path)
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(
            [Problem(where, f"unsupported file type {path.suffix!r} (use .toml or .json)")]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(where, f"cannot read: {exc}")]) from None
    data = _parse(text, path.suffix, where)
    if not isinstance(data, dict):
        raise ConfigError([Problem(where, f"must hold an object (got {type(data).__name__})")])
    return data


def _parse(text: str, suffix: str, where: str) -> object:
    import json
    import tomllib

    try:
        return tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(where, f"invalid TOML: {exc}")]) from None
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})"
        raise ConfigError([Problem(where, message)]) from None
    except RecursionError:
        raise ConfigError([Problem(where, "nested too deeply to read")]) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError([Problem(where, f"cannot parse: {exc}")]) from None


def validate_config(
    config: object, *, allow_imports: bool = True
) -> tuple[list[Problem], dict[str, Any], list[Built]]:
    """Check *config*; return (problems, supervisor settings, [(name, class, options)]).

    Never raises: ``bgservices check`` and ``run`` both go through it, so they agree.
    """
    problems: list[Problem] = []
    try:
        top = _top_level(config, problems)
        if top is None:
            return problems, {}, []
        settings = _supervisor_settings(top.get("supervisor", {}), problems)
        services = _services(top, allow_imports, problems)
    except Exception as exc:  # a safety net for a value no step foresaw
        problems.append(Problem("", f"cannot validate: {describe_error(exc)}"))
        return problems, {}, []
    return problems, settings, services


def from_config(config: object, *, allow_imports: bool = True) -> Supervisor:
    """Validate *config* completely, then construct the supervisor and its services."""
    problems, settings, services = validate_config(config, allow_imports=allow_imports)
    if problems:
        raise ConfigError(problems)
    built = [_construct(name, cls, values) for name, cls, values in services]
    try:
        return Supervisor(built, **settings)
    except ConfigError as exc:
        raise exc.prefixed("supervisor") from None
    except Exception as exc:
        problem = Problem("supervisor", f"cannot construct: {describe_error(exc)}")
        raise ConfigError([problem]) from None


def _construct(name: str, cls: type[Service], values: dict[str, Any]) -> Service:
    try:
        return cls(**values)
    except ConfigError as exc:
        raise exc.prefixed(f"services.{name}") from None
    except Exception as exc:  # a user's constructor may raise anything
        problem = Problem(f"services.{name}", f"cannot construct: {describe_error(exc)}")
        raise ConfigError([problem]) from None


def _table(value: object, where: str, problems: list[Problem]) -> dict[str, Any] | None:
    """*value* as a plain dict with plain ``str`` keys, or None (with a problem)."""
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"must be a mapping (got {type_name(value)})"))
        return None
    try:
        items = list(value.items())
    except Exception as exc:  # a user's Mapping may raise anything
        problems.append(Problem(where, f"cannot be read: {describe_error(exc)}"))
        return None
    table: dict[str, Any] = {}
    for key, item in items:
        if isinstance(key, str):
            table[str.__str__(key)] = item  # a plain copy: a subclass's __eq__ never runs
        else:
            path = f"{where}.{safe_repr(key)}" if where else safe_repr(key)
            problems.append(Problem(path, f"keys must be strings (got {type_name(key)})"))
    return table


def _top_level(config: object, problems: list[Problem]) -> dict[str, Any] | None:
    if not isinstance(config, Mapping):
        problems.append(Problem("", f"configuration must be a mapping (got {type_name(config)})"))
        return None
    top = _table(config, "", problems)
    if top is None:
        return None
    for key in top:
        if key not in _TOP_KEYS:
            problems.append(Problem(key, "unknown key" + suggest(key, _TOP_KEYS)))
    version = top.get("version", VERSION)
    if type(version) is not int or version != VERSION:
        shown = safe_repr(version)
        problems.append(
            Problem("version", f"unsupported version {shown} (this bgservices reads {VERSION})")
        )
    return top


def _supervisor_settings(section: object, problems: list[Problem]) -> dict[str, Any]:
    table = _table(section, "supervisor", problems)
    if table is None:
        return {}
    settings, found = validate_options(SupervisorSettings, table, resolve=None)
    problems += [_under("supervisor", p) for p in found]
    return settings


def _services(top: dict[str, Any], allow_imports: bool, problems: list[Problem]) -> list[Built]:
    before = len(problems)
    entries = _table(top.get("services", {}), "services", problems)
    if entries is None:
        return []
    if not entries and len(problems) == before:
        problems.append(Problem("services", _NO_SERVICES))
    services = []
    for name, entry in entries.items():
        built = _service(name, entry, allow_imports, problems)
        if built is not None:
            services.append(built)
    graph: dict[str, list[str]] = {name: [] for name in entries}  # broken ones still count
    graph.update((name, _requires(values)) for name, _, values in services)
    problems += _deps.problems(graph, "services.")
    return services


def _requires(values: dict[str, Any]) -> list[str]:
    wanted = values.get("requires")
    return [str(w) for w in wanted] if isinstance(wanted, list) else []


def _service(
    name: str, entry: object, allow_imports: bool, problems: list[Problem]
) -> Built | None:
    where = f"services.{name}"
    if not name:
        problems.append(Problem(where, "a service name must be a non-empty string (got '')"))
        return None
    options = _table(entry, where, problems)
    if options is None:
        return None
    cls = _resolve_type(options.pop("type", None), allow_imports, f"{where}.type", problems)
    if cls is None:
        return None
    if "name" in options:
        problems.append(
            Problem(f"{where}.name", "not an option here: the service's name is its key")
        )
        options.pop("name")
    resolve = import_object if allow_imports else None
    values, found = validate_service_options(cls, options, resolve=resolve)
    problems += [_under(where, p) for p in found]
    return name, cls, {**values, "name": name}


def _under(prefix: str, problem: Problem) -> Problem:
    return Problem(f"{prefix}.{problem.path}" if problem.path else prefix, problem.message)


def _resolve_type(
    spec: object, allow_imports: bool, where: str, problems: list[Problem]
) -> type[Service] | None:
    if spec is None:
        problems.append(Problem(where, "required: a registered type name or 'module:Class'"))
        return None
    if not isinstance(spec, str):
        problems.append(Problem(where, f"must be a string (got {type_name(spec)})"))
        return None
    spec = str.__str__(spec)
    if not IMPORT_PATH.match(spec):
        cls = lookup(spec)
        if cls is None:
            problems.append(
                Problem(where, f"unknown service type {spec!r}" + suggest(spec, registered()))
            )
        return cls
    if not allow_imports:
        problems.append(Problem(where, f"import paths are not allowed here (got {spec!r})"))
        return None
    try:
        obj = import_object(spec)
    except Exception as exc:
        problems.append(Problem(where, f"cannot import {spec!r}: {safe_str(exc)}"))
        return None
    if not (isinstance(obj, type) and issubclass(obj, Service)):
        problems.append(Problem(where, f"{spec!r} is not a Service subclass"))
        return None
    return obj
