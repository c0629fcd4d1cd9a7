"""Service options: the public annotated attributes of a ``Service`` class.

A class declares its options like a dataclass does (``interval: float = 5.0``), optionally with
:func:`option` for bounds and help text. A subclass changes an inherited default by plain
assignment (``interval = 60.0``). The constructor and the dict config validate through the same
code, so code and config accept exactly the same values. Types are checked strictly by msgspec
(``"5"`` is not an int, ``True`` is not a number); bounds and messages are ours. Numbers must
be finite, and unless the declaration bounds them, floats within half of
``threading.TIMEOUT_MAX`` (so that even two waits added together are one the clock can take)
and integers within ``sys.maxsize``. Lists and dicts nested
deeper than 32 levels, or containing themselves, are refused.

Rules spanning options go in the ``check_options`` classmethod (calling ``super()``). A rule
is judged whenever the options it reads are valid: one that reads an invalid option is skipped,
so its verdict cannot mislead, and the others still run (see ``bgservices._rules``).

The implementation lives in private modules: ``_options`` (declarations), ``_validate`` (one
value at a time) and ``_rules`` (rules spanning options).
"""

from __future__ import annotations

from ._options import MISSING as MISSING
from ._options import OptionSpec, option, options_of
from ._rules import validate_service_options as validate_service_options
from ._validate import validate_options as validate_options

__all__ = ["OptionSpec", "option", "options_of"]
