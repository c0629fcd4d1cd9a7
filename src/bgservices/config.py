"""Build a supervisor from a plain dict (or a TOML/JSON file), validating everything first.

Every problem is collected with its dotted path before any service is constructed, and
reported together in one ``ConfigError``. The dict's service options are validated against
the same declarations as the service constructors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError, Problem
from .options import IMPORT_PATH, import_object, suggest, validate_options
from .registry import lookup, registered
from .service import Service
from .supervisor import Supervisor, SupervisorSettings

__all__ = ["from_config", "load_config", "validate_config"]

VERSION = 1
_TOP_KEYS = ("version", "supervisor", "services")


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.toml`` or ``.json`` file into a dict; ``ConfigError`` on any problem."""
    import json
    import tomllib
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
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(where, f"invalid TOML: {exc}")]) from None
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})"
        raise ConfigError([Problem(where, message)]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(where, f"must hold an object (got {type(data).__name__})")])
    return data


def validate_config(
    config: object, *, allow_imports: bool = True
) -> tuple[list[Problem], dict[str, Any], list[tuple[str, type[Service], dict[str, Any]]]]:
    """Check *config*; return (problems, supervisor settings, [(name, class, options)])."""
    problems: list[Problem] = []
    if not isinstance(config, Mapping):
        return (
            [Problem("", f"configuration must be a mapping (got {type(config).__name__})")],
            {},
            [],
        )
    for key in config:
        if key not in _TOP_KEYS:
            problems.append(Problem(str(key), "unknown key" + suggest(key, _TOP_KEYS)))
    version = config.get("version", VERSION)
    if type(version) is not int or version != VERSION:
        problems.append(
            Problem("version", f"unsupported version {version!r} (this bgservices reads {VERSION})")
        )

    settings: dict[str, Any] = {}
    section = config.get("supervisor", {})
    if isinstance(section, Mapping):
        settings, found = validate_options(SupervisorSettings, section, resolve=None)
        problems += [Problem(f"supervisor.{p.path}", p.message) for p in found]
    else:
        problems.append(Problem("supervisor", f"must be a mapping (got {type(section).__name__})"))

    services: list[tuple[str, type[Service], dict[str, Any]]] = []
    entries = config.get("services", {})
    if not isinstance(entries, Mapping):
        problems.append(Problem("services", f"must be a mapping (got {type(entries).__name__})"))
        entries = {}
    for name, entry in entries.items():
        built = _validate_service(name, entry, allow_imports, problems)
        if built is not None:
            services.append(built)
    return problems, settings, services


def from_config(config: object, *, allow_imports: bool = True) -> Supervisor:
    """Validate *config* completely, then construct the supervisor and its services."""
    problems, settings, services = validate_config(config, allow_imports=allow_imports)
    if problems:
        raise ConfigError(problems)
    built = []
    for name, cls, values in services:
        try:
            built.append(cls(**values))
        except ConfigError as exc:
            raise exc.prefixed(f"services.{name}") from None
        except Exception as exc:  # a user's constructor may raise anything
            raise ConfigError([Problem(f"services.{name}", f"cannot construct: {exc!r}")]) from None
    return Supervisor(built, **settings)


def _validate_service(
    name: object, entry: object, allow_imports: bool, problems: list[Problem]
) -> tuple[str, type[Service], dict[str, Any]] | None:
    where = f"services.{name}"
    if not isinstance(name, str) or not name:
        problems.append(Problem(where, f"a service name must be a non-empty string (got {name!r})"))
        return None
    if not isinstance(entry, Mapping):
        problems.append(Problem(where, f"must be a mapping (got {type(entry).__name__})"))
        return None
    cls = _resolve_type(entry.get("type"), allow_imports, f"{where}.type", problems)
    if cls is None:
        return None
    options = {k: v for k, v in entry.items() if k != "type"}
    if "name" in options:
        problems.append(
            Problem(f"{where}.name", "not an option here: the service's name is its key")
        )
        options.pop("name")
    values, found = validate_options(cls, options, resolve=import_object if allow_imports else None)
    if not found:  # cross-option rules need every option valid, or they mislead
        try:
            found = cls.check_options(values)
        except Exception as exc:  # a user's rule may raise anything
            found = [Problem("", f"check_options failed: {exc!r}")]
    problems += [Problem(f"{where}.{p.path}" if p.path else where, p.message) for p in found]
    return name, cls, {**values, "name": name}


def _resolve_type(
    spec: object, allow_imports: bool, where: str, problems: list[Problem]
) -> type[Service] | None:
    if spec is None:
        problems.append(Problem(where, "required: a registered type name or 'module:Class'"))
        return None
    if not isinstance(spec, str):
        problems.append(Problem(where, f"must be a string (got {type(spec).__name__})"))
        return None
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
        problems.append(Problem(where, f"cannot import {spec!r}: {exc}"))
        return None
    if not (isinstance(obj, type) and issubclass(obj, Service)):
        problems.append(Problem(where, f"{spec!r} is not a Service subclass"))
        return None
    return obj
