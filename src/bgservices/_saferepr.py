"""Describe any value in an error message without trusting it.

A configuration may hold objects whose ``repr`` or ``str`` raises, integers too long to
print, or containers that contain themselves. Error messages show them through these
helpers, which never raise and keep the text short.
"""

from __future__ import annotations

import reprlib

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 40


def safe_repr(value: object) -> str:
    """A short ``repr`` of *value*; a placeholder naming its type if that fails."""
    try:
        text = _repr.repr(value)
    except Exception:  # a raising __repr__ inside a container, an int too long to print, ...
        return f"<unprintable {type_name(value)}>"
    return text if type(text) is str else f"<unprintable {type_name(value)}>"


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
        return f"<unprintable {type_name(exc)}>"
    if type(text) is not str:
        return f"<unprintable {type_name(exc)}>"
    return text if len(text) <= 300 else text[:297] + "..."


def safe_str(value: object) -> str:
    """``str(value)`` (an exception's message, say), or its safe repr if that fails."""
    try:
        text = str(value)
    except Exception:
        return safe_repr(value)
    return text if type(text) is str else safe_repr(value)
