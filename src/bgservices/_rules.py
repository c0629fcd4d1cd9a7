"""Rules spanning options (``check_options``), judged as far as the valid options allow.

A class's rules live in its ``check_options`` classmethod, which calls ``super()`` so that
its bases' rules run too. With every option valid, the chain is called once, as written.

With some option invalid, each class's own ``check_options`` is judged on its own: skipped
if *it* reads an invalid option (its verdict would mislead), kept otherwise, whatever its
bases read. For that, the chain is called starting at each class in turn, through a view of
the values in which:

- the class being judged reading an invalid option raises a private signal: it is skipped;
- a base it reaches through ``super()`` reading one sees the option's default (or nothing);

and the bases' share of the result, computed alone through the same view, is taken out. So
rules must be plain functions of the class and the values (they may run more than once). A
rule that raises on such partial values is skipped too; it is judged once the other problems
are fixed. An override that does not call ``check_options`` ends the chain, as it does when
every option is valid. A chain whose classes cannot be told apart (two sharing one function)
is judged only once every option is valid.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._options import MISSING
from ._saferepr import describe_error, safe_repr, safe_str
from ._validate import Resolver, check_fields, import_object
from .errors import Problem


def validate_service_options(
    cls: type, values: Mapping[str, Any], *, resolve: Resolver | None = import_object
) -> tuple[dict[str, Any], list[Problem]]:
    """Check each option of *cls*, then its rules spanning options; every problem at once.

    Returns the values completed with defaults, and the problems (paths relative to the
    service). The constructor and the dict config both validate through this.
    """
    fields = check_fields(cls, values, resolve)
    return fields.values, fields.problems + check_rules(cls, fields.values, fields.invalid)


def check_rules(cls: type, values: dict[str, Any], invalid: Mapping[str, Any]) -> list[Problem]:
    """Run ``cls.check_options``; with *invalid* options, each class's rule if it can judge."""
    if not hasattr(cls, "check_options"):
        return []
    if not invalid:
        try:
            return _as_problems(cls.check_options(values))
        except Exception as exc:  # a user's rule may raise anything
            return [Problem("", f"check_options failed: {describe_error(exc)}")]
    chain = _chain_of(cls)
    if chain is None:
        return []
    kept = [_own_problems(cls, chain, i, values, invalid) for i in range(len(chain.methods))]
    return [problem for own in reversed(kept) if own is not None for problem in own]


class _Skip(BaseException):
    """Raised into the rule being judged when it reads an invalid option.

    A BaseException so that a rule's ``except Exception`` does not swallow it.
    """


@dataclass(frozen=True)
class _Chain:
    #: Each class's own ``check_options`` (a classmethod), most derived first, as far as
    #: ``super()`` calls reach.
    methods: tuple[classmethod[Any, Any, Any], ...]
    #: The code of each, to tell which class is reading.
    owners: dict[types.CodeType, int]


_chains: dict[type, _Chain | None] = {}


def _chain_of(cls: type) -> _Chain | None:
    try:
        return _chains[cls]
    except KeyError:
        chain = _chains[cls] = _make_chain(cls)
        return chain


def _make_chain(cls: type) -> _Chain | None:
    methods: list[classmethod[Any, Any, Any]] = []
    owners: dict[types.CodeType, int] = {}
    for klass in cls.__mro__:
        method = klass.__dict__.get("check_options")
        if method is None:
            continue
        code = _code_of(method)
        if code is None or code in owners:
            return None
        owners[code] = len(methods)
        methods.append(method)
        if not _calls_check_options(code):
            break  # an override without super(): its bases' rules do not apply
    return _Chain(tuple(methods), owners)


def _code_of(method: object) -> types.CodeType | None:
    if not isinstance(method, classmethod):
        return None
    func: Any = method.__func__
    while hasattr(func, "__wrapped__"):  # a decorated rule: the frames are the inner function's
        func = func.__wrapped__
    code = getattr(func, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _calls_check_options(code: types.CodeType) -> bool:
    return "check_options" in code.co_names or any(
        isinstance(const, types.CodeType) and _calls_check_options(const)
        for const in code.co_consts
    )


def _own_problems(
    cls: type, chain: _Chain, index: int, values: dict[str, Any], invalid: Mapping[str, Any]
) -> list[Problem] | None:
    """The problems of the rule of ``chain.methods[index]`` alone; None if it cannot judge."""
    found = _run(cls, chain, index, _View(values, invalid, chain.owners, judged=index))
    if found is None:
        return None
    if index + 1 == len(chain.methods):
        return found
    bases = _run(cls, chain, index + 1, _View(values, invalid, chain.owners, judged=None))
    if bases is None:  # a rule that is not a plain function of its values
        return None
    for problem in bases:  # take the bases' part out, once per occurrence
        if problem in found:
            found.remove(problem)
    return found


def _run(cls: type, chain: _Chain, index: int, view: _View) -> list[Problem] | None:
    try:
        return _as_problems(chain.methods[index].__get__(None, cls)(view))
    except _Skip:
        return None
    except Exception:  # failing on partial values: judged once the other problems are fixed
        return None
    finally:
        view.close()


def _as_problems(found: object) -> list[Problem]:
    if not isinstance(found, (list, tuple)) or not all(isinstance(p, Problem) for p in found):
        raise TypeError(f"check_options must return a list of Problem (got {safe_repr(found)})")
    return [  # plain text, so that printing the ConfigError cannot fail
        p
        if type(p.path) is type(p.message) is str
        else Problem(safe_str(p.path), safe_str(p.message))
        for p in found
    ]


class _View(Mapping[str, Any]):
    """The values as one rule of the chain may see them (see the module's docstring)."""

    def __init__(
        self,
        values: dict[str, Any],
        invalid: Mapping[str, Any],
        owners: Mapping[types.CodeType, int],
        judged: int | None,
    ) -> None:
        self._values, self._invalid, self._owners = values, invalid, owners
        self._judged = judged
        self._open = True

    def close(self) -> None:
        """After the run, invalid options simply look absent (a rule may keep the view)."""
        self._open = False

    def __getitem__(self, key: str) -> Any:
        if key not in self._invalid:
            return self._values[key]
        if self._open and self._judged is not None and self._reader() in (None, self._judged):
            raise _Skip
        fallback = self._invalid[key]
        if fallback is MISSING or not self._open:
            raise KeyError(key)
        return fallback

    def __iter__(self) -> Iterator[str]:
        return iter([*self._values, *self._invalid])

    def __len__(self) -> int:
        return len(self._values) + len(self._invalid)

    def _reader(self) -> int | None:
        """Which class of the chain is reading: the nearest rule frame up the stack."""
        frame: types.FrameType | None = sys._getframe(2)
        while frame is not None:
            owner = self._owners.get(frame.f_code)
            if owner is not None:
                return owner
            frame = frame.f_back
        return None
