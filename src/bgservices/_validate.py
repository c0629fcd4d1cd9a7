"""Checking option values one at a time: type, choices, bounds, number range and nesting.

Each given value goes through the steps of :func:`check_value`, which never raises: whatever
the value does (a raising ``__repr__``, a cycle, a number no clock can wait for), the result
is a converted value or a :class:`Problem` with the option's path.
"""

from __future__ import annotations

import copy
import importlib
import math
import operator
import re
import sys
import threading
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._options import MISSING, OptionSpec, is_callable_type, options_of, union_members
from ._saferepr import safe_repr, safe_str
from .errors import Problem

#: Floats must be finite and, unless declared otherwise, within this: half the longest wait
#: ``threading`` accepts (``Event.wait(1e10)`` raises ``OverflowError``), so that two waits
#: added together (``interval + jitter``, ``shutdown_timeout + daemon_grace``) still fit.
MAX_FLOAT = threading.TIMEOUT_MAX / 2
#: Integers must, unless declared otherwise, be within this: the largest size or count
#: Python's containers and semaphores accept.
MAX_INT = sys.maxsize
#: Lists, tuples and dicts nested deeper than this are refused, and so are cycles.
MAX_DEPTH = 32
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_CONTAINERS = (dict, list, tuple)

Resolver = Callable[[str], Any]


def import_object(path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the object it names."""
    module_name, _, attr_path = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


def suggest(key: object, known: Iterable[str]) -> str:
    """`` (did you mean x?)`` for the closest of *known* to *key*, or an empty string."""
    import difflib

    if type(key) is not str:
        return ""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass
class Fields:
    """The outcome of checking every option of a class on its own."""

    #: Valid values, defaults filled in for options not given.
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: Options that are invalid or missing, each with its default (or MISSING) to fall back on.
    invalid: dict[str, Any] = field(default_factory=dict)


def check_fields(cls: type, given: Mapping[str, Any], resolve: Resolver | None) -> Fields:
    """Check *given* against the options of *cls*: unknown, missing, and each value."""
    specs = options_of(cls)
    fields = Fields()
    named = _read_names(given, fields.problems)
    for key in named:
        if key not in specs:
            fields.problems.append(Problem(key, "unknown option" + suggest(key, specs)))
    for name, spec in specs.items():
        if name in named:
            value, problem = check_value(spec, named[name], resolve)
        elif spec.required:
            value, problem = MISSING, Problem(name, "required option is missing")
        else:
            value, problem = copy.copy(spec.default), None
        if problem is None:
            fields.values[name] = value
        else:
            fields.problems.append(problem)
            fields.invalid[name] = spec.default
    return fields


def validate_options(
    cls: type, values: Mapping[str, Any], *, resolve: Resolver | None = import_object
) -> tuple[dict[str, Any], list[Problem]]:
    """Check *values* against the options of *cls*; return them completed with defaults.

    Every problem is collected (unknown, missing, wrong type, out of range), paths relative
    to the service. *resolve* turns ``"module:attr"`` strings into objects where a callable
    is expected; ``None`` refuses such strings (config from a less trusted place). Rules
    spanning options are not run: see ``validate_service_options``.
    """
    fields = check_fields(cls, values, resolve)
    return fields.values, fields.problems


def _read_names(given: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """*given* as a plain dict with plain ``str`` keys; other keys are problems."""
    try:
        items = list(given.items())
    except Exception as exc:  # a user's Mapping may raise anything
        problems.append(Problem("", f"cannot read the options: {safe_repr(exc)}"))
        return {}
    named: dict[str, Any] = {}
    for key, value in items:
        if isinstance(key, str):
            named[str.__str__(key)] = value  # a plain copy: a subclass's __eq__ never runs
        else:
            problems.append(Problem(safe_repr(key), "unknown option (names are strings)"))
    return named


# -- one value -------------------------------------------------------------------------------


def check_value(
    spec: OptionSpec, value: Any, resolve: Resolver | None
) -> tuple[Any, Problem | None]:
    """*value* converted to *spec*'s type, or the problem with it. Never raises."""
    try:
        problem = nesting_problem(spec.name, value)
        if problem is not None:
            return None, problem
        kind = _kind_of(spec.type)
        if kind.callables:
            outcome = _as_callable(spec, value, kind, resolve)
            if outcome is not None:
                return outcome
        if kind.literals is not None:
            return _as_literal(spec, value, kind)
        converted, problem = _convert(spec, value, kind)
        if problem is None and kind.numeric and _is_number(converted):
            problem = number_problem(spec, converted, value)
        return converted, problem
    except Exception as exc:  # a value whose methods raise where we did not expect it
        return None, Problem(spec.name, f"cannot be checked: {safe_repr(exc)}")


@dataclass(frozen=True)
class _Kind:
    """What an option's type asks for, worked out once per type."""

    callables: bool  # a Callable is among the members
    only_none_besides: bool  # every member other than a Callable is None
    none_ok: bool
    literals: tuple[Any, ...] | None  # every non-None member is a Literal: the choices
    numeric: bool  # int or float is among the members
    target: Any  # what msgspec converts to (the members that are not Callables)


_kinds: dict[Any, _Kind] = {}


def _kind_of(tp: Any) -> _Kind:
    try:
        return _kinds[tp]
    except KeyError:
        kind = _kinds[tp] = _make_kind(tp)
        return kind
    except TypeError:  # an unhashable annotation
        return _make_kind(tp)


def _make_kind(tp: Any) -> _Kind:
    members = union_members(tp)
    others = [m for m in members if not is_callable_type(m)]
    non_none = [m for m in others if m is not type(None)]
    literal = bool(non_none) and all(typing.get_origin(m) is Literal for m in non_none)
    return _Kind(
        callables=len(others) < len(members),
        only_none_besides=not non_none,
        none_ok=len(non_none) < len(others),
        literals=tuple(a for m in non_none for a in typing.get_args(m)) if literal else None,
        numeric=any(m in (int, float) for m in others),
        target=others[0] if len(others) == 1 else typing.Union[tuple(others)],  # noqa: UP007
    )


def _shown(spec: OptionSpec, value: Any) -> str:
    return "<redacted>" if spec.secret else safe_repr(value)


def _as_callable(
    spec: OptionSpec, value: Any, kind: _Kind, resolve: Resolver | None
) -> tuple[Any, Problem | None] | None:
    """The outcome for a Callable option, or None to go on with its other members."""
    if callable(value):
        return value, None
    if isinstance(value, str) and IMPORT_PATH.match(value):
        return _resolve(spec.name, str.__str__(value), resolve)
    if value is None and kind.none_ok:
        return None, None
    if kind.only_none_besides:
        shown = _shown(spec, value)
        return None, Problem(spec.name, f"must be a callable or 'module:attr' (got {shown})")
    return None


def _resolve(name: str, path: str, resolve: Resolver | None) -> tuple[Any, Problem | None]:
    if resolve is None:
        return None, Problem(name, f"import paths are not allowed here (got {path!r})")
    try:
        obj = resolve(path)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raised
        return None, Problem(name, f"cannot import {path!r}: {safe_str(exc)}")
    if not callable(obj):
        return None, Problem(name, f"{path!r} is not callable")
    return obj, None


def _as_literal(spec: OptionSpec, value: Any, kind: _Kind) -> tuple[Any, Problem | None]:
    choices = kind.literals or ()
    if (value is None and kind.none_ok) or any(
        type(value) is type(c) and value == c for c in choices
    ):
        return value, None
    listed = ", ".join(repr(c) for c in choices)
    return None, Problem(spec.name, f"must be one of {listed} (got {_shown(spec, value)})")


def _convert(spec: OptionSpec, value: Any, kind: _Kind) -> tuple[Any, Problem | None]:
    import msgspec  # imported when options are first validated, not at ``import bgservices``

    try:
        return msgspec.convert(value, kind.target, strict=True), None
    except msgspec.ValidationError as exc:
        return None, _translate(spec, str(exc), value)
    except TypeError:  # a type msgspec does not structure (a user's class, a Protocol)
        members = union_members(kind.target)
        if any(_isinstance(value, m) for m in members):
            return value, None
        return None, Problem(spec.name, f"must be {spec.type_name} (got {_shown(spec, value)})")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_DECLARED = (
    (">", "gt", operator.gt),
    (">=", "ge", operator.ge),
    ("<", "lt", operator.lt),
    ("<=", "le", operator.le),
)


def number_problem(spec: OptionSpec, number: float, given: Any) -> Problem | None:
    """Finite, within the declared bounds, and within MAX_FLOAT / MAX_INT unless declared.

    *given* is the value as given (``-1`` rather than the converted ``-1.0``), for messages.
    """
    if isinstance(number, float) and not math.isfinite(number):
        return _refused(spec, "must be a finite number", given)
    for op, attr, holds in _DECLARED:
        bound = getattr(spec, attr)
        if bound is not None and not holds(number, bound):
            return _refused(spec, f"must be {op} {bound:g}", given)
    return _limit_problem(spec, number, given)


def _limit_problem(spec: OptionSpec, number: float, given: Any) -> Problem | None:
    """The default limits, on each side the declaration leaves unbounded."""
    limit, why = (
        (MAX_FLOAT, "half of threading.TIMEOUT_MAX, so two waits added still fit the clock")
        if isinstance(number, float)
        else (MAX_INT, "the largest size Python allows")
    )
    if spec.le is None and spec.lt is None and number > limit:
        return _refused(spec, f"must be <= {_number_text(limit)}, {why}", given)
    if spec.ge is None and spec.gt is None and number < -limit:
        return _refused(spec, f"must be >= {_number_text(-limit)}, {why}", given)
    return None


def _refused(spec: OptionSpec, rule: str, given: Any) -> Problem:
    return Problem(spec.name, f"{rule} (got {_shown(spec, given)})")


def _number_text(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


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


def _translate(spec: OptionSpec, message: str, value: Any) -> Problem:
    match = _MSGSPEC_ERROR.match(message)
    assert match is not None  # the pattern matches any string
    text, sub = match["text"], match["sub"]
    if sub:
        return Problem(spec.name + sub, text.replace("`", "").replace("Expected", "expected"))
    if text.startswith("Number out of range"):
        return Problem(spec.name, f"is out of range (got {_shown(spec, value)})")
    expected = re.match(r"Expected `(.+?)`", text)
    what = expected[1] if expected else spec.type_name
    plain = " or ".join(_PLAIN_TYPES.get(part, part) for part in what.split(" | "))
    return Problem(spec.name, f"must be {plain} (got {_shown(spec, value)})")


def _isinstance(value: Any, tp: Any) -> bool:
    try:
        return isinstance(value, tp)
    except TypeError:
        return False


# -- nesting ---------------------------------------------------------------------------------


def nesting_problem(path: str, value: object) -> Problem | None:
    """A cycle, or nesting deeper than MAX_DEPTH, in the dicts, lists and tuples of *value*."""
    if not isinstance(value, _CONTAINERS):
        return None
    found = _Walk().visit(value, 1)
    if found is None:
        return None
    steps, message = found
    shown = "".join(_step(s) for s in reversed(steps[-8:]))
    return Problem(path + shown + ("..." if len(steps) > 8 else ""), message)


class _Walk:
    """Depth-first over containers; *open* are the ancestors, *done* were seen in full."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.done: set[int] = set()
        self.keep: list[object] = []  # holds what the ids name, so no id is reused meanwhile

    def visit(self, value: object, depth: int) -> tuple[list[object], str] | None:
        ident = id(value)
        if ident in self.open:
            return [], "contains itself (a reference cycle)"
        if ident in self.done:
            return None
        if depth > MAX_DEPTH:
            return [], f"nested deeper than {MAX_DEPTH} levels"
        self.open.add(ident)
        self.keep.append(value)
        for key, item in _children(value):
            if isinstance(item, _CONTAINERS):
                found = self.visit(item, depth + 1)
                if found is not None:
                    found[0].append(key)
                    return found
        self.open.discard(ident)
        self.done.add(ident)
        return None


def _children(value: object) -> Iterator[tuple[object, object]]:
    # The base classes' own methods: a subclass's overrides are user code we need not run.
    if isinstance(value, dict):
        return iter(dict.items(value))
    items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)  # type: ignore[arg-type]
    return enumerate(items)


def _step(key: object) -> str:
    if isinstance(key, str):
        return "." + str.__str__(key)
    return f"[{safe_repr(key)}]"
