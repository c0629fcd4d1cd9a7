"""Option declarations: ``option()``, ``OptionSpec`` and collecting a class's options.

What a class declares lives here; checking values against it is ``_validate`` (one value at
a time) and ``_rules`` (rules spanning options).
"""

from __future__ import annotations

import collections.abc
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: The default of a required option.
MISSING: Any = _Missing()
#: Options named like this are secret whether or not they say so: never echoed in errors.
_SECRET_NAME = re.compile(r"password|passwd|secret|token|api_?key|credential", re.IGNORECASE)


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
        return type_text(self.type)

    def bounds(self) -> list[str]:
        """Human-readable declared constraints, e.g. ``["> 0"]``."""
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


def union_members(tp: Any) -> list[Any]:
    """``int | None`` -> ``[int, NoneType]``; any other type -> ``[tp]`` (Annotated unwrapped)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return list(typing.get_args(tp))
    return [tp]


def is_callable_type(tp: Any) -> bool:
    return tp is collections.abc.Callable or typing.get_origin(tp) is collections.abc.Callable


def type_text(tp: Any) -> str:
    """A type as users read it: ``float | None``, ``callable``, ``'HEAD' | 'GET'``."""
    members = union_members(tp)
    if len(members) > 1:
        return " | ".join(type_text(m) for m in members)
    (tp,) = members
    if tp is type(None):
        return "None"
    if is_callable_type(tp):
        return "callable"
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")
