"""Describe any value in an error message without trusting it.

A configuration may hold objects whose ``repr`` or ``str`` raises, integers too long to
print, or containers that contain themselves. Error messages show them through these
helpers, which never raise and keep the text short.
"""

from __future__ import annotations

import reprlib


class _Repr(reprlib.Repr):
    """reprlib's short reprs, with a placeholder that names no address when repr fails."""

    def repr1(self, x: object, level: int) -> str:
        # a subclass of a container (a list of events, say) as that base, shortened: reprlib
        # would call its whole repr, every item however many. One with a repr of its own (a
        # namedtuple, a Counter) keeps it while it holds no more than reprlib would show.
        base = _shown_as_base(x, self.maxlist)
        if base is not None:
            shown = getattr(self, f"repr_{base.__name__}")(x, level)
            return f"{type_name(x)}({shown})"
        return super().repr1(x, level)

    def repr_instance(self, x: object, level: int) -> str:
        try:
            text = repr(x)
        except Exception:
            return _placeholder(x)
        if type(text) is not str:
            return _placeholder(x)
        if len(text) <= self.maxother:
            return text
        head = (self.maxother - 3) // 2
        return text[:head] + "..." + text[len(text) - (self.maxother - 3 - head) :]

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # more digits than Python converts to text
            return f"<int of {x.bit_length()} bits>"


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _shown_as_base(x: object, most: int) -> type | None:
    """The built-in container to show *x*, a subclass of one, as (shortened); None to show
    it as it is."""
    kind = type(x)
    if kind in _CONTAINERS or not isinstance(x, _CONTAINERS):
        return None
    base = next(b for b in _CONTAINERS if isinstance(x, b))
    own_repr = getattr(kind, "__repr__", None) is not getattr(base, "__repr__", None)
    return None if own_repr and len(x) <= most else base


_repr = _Repr()
_repr.maxlevel = 3
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 40


def safe_repr(value: object) -> str:
    """A short ``repr`` of *value*; a placeholder naming its type if that fails."""
    try:
        text = _repr.repr(value)
    except Exception:  # a raising __repr__ inside a container, an int too long to print, ...
        return _placeholder(value)
    return text if type(text) is str else _placeholder(value)


def _placeholder(value: object) -> str:
    return f"<unprintable {type_name(value)}>"


def type_name(value: object) -> str:
    """The name of *value*'s type, for messages like ``must be a mapping (got list)``."""
    try:
        name = type(value).__name__
    except Exception:  # a metaclass with a raising __name__
        return "object"
    return name if type(name) is str else "object"


def describe_error(exc: BaseException) -> str:
    """``ValueError('bad')`` for an exception in a message, whatever its ``repr`` does."""
    try:
        text = repr(exc)
    except Exception:
        return _placeholder(exc)
    if type(text) is not str:
        return _placeholder(exc)
    return text if len(text) <= 300 else text[:297] + "..."


def safe_str(value: object) -> str:
    """``str(value)`` (an exception's message, say), or its safe repr if that fails."""
    try:
        text = str(value)
    except Exception:
        return safe_repr(value)
    return text if type(text) is str else safe_repr(value)
