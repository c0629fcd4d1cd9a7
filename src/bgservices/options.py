"""Service options: the public annotated attributes of a ``Service`` class.

A class declares its options like a dataclass does (``interval: float = 5.0``), optionally with
:func:`option` for bounds and help text. A subclass changes an inherited default by plain
assignment (``interval = 60.0``). The constructor and the dict config both validate through
:func:`validate_options`, so code and config accept exactly the same values. Types are checked
strictly by msgspec (``"5"`` is not an int, ``True`` is not a number); bounds and messages are ours.
"""

from __future__ import annotations

import collections.abc
import copy
import importlib
import operator
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .errors import Problem

__all__ = [
    "IMPORT_PATH",
    "OptionSpec",
    "import_object",
    "option",
    "options_of",
    "suggest",
    "validate_options",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
#: Options named like this are secret whether or not they say so: never echoed in errors.
_SECRET_NAME = re.compile(r"password|passwd|secret|token|api_?key|credential", re.IGNORECASE)
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class _OptionInfo:
    default: Any
    help: str
    gt: float | None
    ge: float | None
    lt: float | None
    le: float | None
    secret: bool


def option(
    default: Any = MISSING,
    *,
    help: str = "",
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    secret: bool = False,
) -> Any:
    """Declare an option with bounds, help text, or ``secret=True`` (never echoed in errors).

    Options whose names contain password, secret, token, api_key or credential are secret
    without saying so.

    Without a default the option is required.
    """
    return _OptionInfo(default, help, gt, ge, lt, le, secret)


@dataclass(frozen=True)
class OptionSpec:
    """Everything known about one declared option."""

    name: str
    type: Any
    default: Any
    help: str = ""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def type_name(self) -> str:
        return _type_name(self.type)

    def bounds(self) -> list[str]:
        """Human-readable constraints, e.g. ``["> 0"]``."""
        pairs = ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
        return [f"{op} {bound:g}" for op, bound in pairs if bound is not None]


_cache: dict[type, dict[str, OptionSpec]] = {}


def options_of(cls: type) -> Mapping[str, OptionSpec]:
    """The options *cls* declares or inherits, base-class options first."""
    specs = _cache.get(cls)
    if specs is None:
        specs = _cache[cls] = _collect(cls)
    return specs


def _collect(cls: type) -> dict[str, OptionSpec]:
    hints = typing.get_type_hints(cls, include_extras=True)
    specs: dict[str, OptionSpec] = {}
    for name, tp in hints.items():
        if name.startswith("_") or tp is ClassVar or typing.get_origin(tp) is ClassVar:
            continue
        info = next(
            (
                k.__dict__[name]
                for k in cls.__mro__
                if isinstance(k.__dict__.get(name), _OptionInfo)
            ),
            None,
        )
        default = next((k.__dict__[name] for k in cls.__mro__ if name in k.__dict__), MISSING)
        if isinstance(default, _OptionInfo):
            default = default.default
        secret_name = bool(_SECRET_NAME.search(name))
        if info is None:
            specs[name] = OptionSpec(name, tp, default, secret=secret_name)
        else:
            specs[name] = OptionSpec(
                name, tp, default, info.help, info.gt, info.ge, info.lt, info.le,
                info.secret or secret_name,
            )  # fmt: skip
    return specs


def import_object(path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the object it names."""
    module_name, _, attr_path = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


def validate_options(
    cls: type,
    values: Mapping[str, Any],
    *,
    resolve: Callable[[str], Any] | None = import_object,
) -> tuple[dict[str, Any], list[Problem]]:
    """Check *values* against the options of *cls*; return them completed with defaults.

    Every problem is collected (unknown, missing, wrong type, out of range), paths relative to
    the service. *resolve* turns ``"module:attr"`` strings into objects where a callable is
    expected; ``None`` refuses such strings (config from a less trusted place).
    """
    specs = options_of(cls)
    problems: list[Problem] = []
    result: dict[str, Any] = {}
    for key in values:
        if key not in specs:
            problems.append(Problem(str(key), "unknown option" + suggest(key, specs)))
    for name, spec in specs.items():
        if name in values:
            value, problem = _check(spec, values[name], resolve)
            if problem is None:
                result[name] = value
            else:
                problems.append(problem)
        elif spec.required:
            problems.append(Problem(name, "required option is missing"))
        else:
            result[name] = copy.copy(spec.default)
    return result, problems


def suggest(key: object, known: Iterable[str]) -> str:
    """`` (did you mean x?)`` for the closest of *known* to *key*, or an empty string."""
    import difflib

    if not isinstance(key, str):
        return ""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check(
    spec: OptionSpec, value: Any, resolve: Callable[[str], Any] | None
) -> tuple[Any, Problem | None]:
    shown = "<redacted>" if spec.secret else repr(value)
    members = _union_members(spec.type)
    callables = [m for m in members if _is_callable_type(m)]
    others = [m for m in members if not _is_callable_type(m)]

    if callables:
        if callable(value):
            return value, None
        if isinstance(value, str) and IMPORT_PATH.match(value):
            return _resolve(spec.name, value, resolve)
        if value is None and type(None) in others:
            return None, None
        if all(m is type(None) for m in others):
            return None, Problem(spec.name, f"must be a callable or 'module:attr' (got {shown})")

    non_none = [m for m in others if m is not type(None)]
    if non_none and all(typing.get_origin(m) is Literal for m in non_none):
        literals = [a for m in non_none for a in typing.get_args(m)]
        if (value is None and len(non_none) < len(others)) or any(
            type(value) is type(c) and value == c for c in literals
        ):
            return value, None
        choices = ", ".join(repr(c) for c in literals)
        return None, Problem(spec.name, f"must be one of {choices} (got {shown})")

    import msgspec  # imported when options are first validated, not at ``import bgservices``

    target: Any = others[0] if len(others) == 1 else typing.Union[tuple(others)]  # noqa: UP007 (built at run time)
    try:
        converted = msgspec.convert(value, target, strict=True)
    except msgspec.ValidationError as exc:
        return None, _translate(spec, str(exc), shown)
    except TypeError:  # a type msgspec does not structure (a user's class, a Protocol)
        if any(_isinstance(value, m) for m in others):
            return value, None
        return None, Problem(spec.name, f"must be {spec.type_name} (got {shown})")

    if isinstance(converted, (int, float)) and not isinstance(converted, bool):
        for op, bound, holds in (
            (">", spec.gt, operator.gt),
            (">=", spec.ge, operator.ge),
            ("<", spec.lt, operator.lt),
            ("<=", spec.le, operator.le),
        ):
            if bound is not None and not holds(converted, bound):
                return None, Problem(spec.name, f"must be {op} {bound:g} (got {shown})")
    return converted, None


def _resolve(
    name: str, path: str, resolve: Callable[[str], Any] | None
) -> tuple[Any, Problem | None]:
    if resolve is None:
        return None, Problem(name, f"import paths are not allowed here (got {path!r})")
    try:
        obj = resolve(path)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raised
        return None, Problem(name, f"cannot import {path!r}: {exc}")
    if not callable(obj):
        return None, Problem(name, f"{path!r} is not callable")
    return obj, None


_PLAIN_TYPES = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_MSGSPEC_ERROR = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<sub>.*)`)?$", re.DOTALL)


def _translate(spec: OptionSpec, message: str, shown: str) -> Problem:
    match = _MSGSPEC_ERROR.match(message)
    assert match is not None  # the pattern matches any string
    text, sub = match["text"], match["sub"]
    if sub:
        return Problem(spec.name + sub, text.replace("`", "").replace("Expected", "expected"))
    expected = re.match(r"Expected `(.+?)`", text)
    what = expected[1] if expected else spec.type_name
    plain = " or ".join(_PLAIN_TYPES.get(part, part) for part in what.split(" | "))
    return Problem(spec.name, f"must be {plain} (got {shown})")


def _union_members(tp: Any) -> list[Any]:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return list(typing.get_args(tp))
    return [tp]


def _is_callable_type(tp: Any) -> bool:
    return tp is collections.abc.Callable or typing.get_origin(tp) is collections.abc.Callable


def _isinstance(value: Any, tp: Any) -> bool:
    try:
        return isinstance(value, tp)
    except TypeError:
        return False


def _type_name(tp: Any) -> str:
    members = _union_members(tp)
    if len(members) > 1:
        return " | ".join(_type_name(m) for m in members)
    (tp,) = members
    if tp is type(None):
        return "None"
    if _is_callable_type(tp):
        return "callable"
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")
