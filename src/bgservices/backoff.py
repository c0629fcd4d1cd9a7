"""Exponential backoff with jitter between restarts of a failing service."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._saferepr import safe_repr
from ._validate import MAX_FLOAT

if TYPE_CHECKING:
    from random import Random

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delay before restart number *attempt*: ``initial * factor**(attempt-1)``, capped.

    The delay is jittered ("equal jitter") into ``[base/2, base]`` so that services failing
    together do not restart in lock-step. A service that ran for *reset_after* seconds before
    failing starts again from the first attempt.
    """

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 30.0
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        # Every delay is waited for: none may be NaN or longer than options may be (half of
        # threading.TIMEOUT_MAX: ``Event.wait(1e10)`` raises OverflowError).
        for name in ("initial", "factor", "maximum", "reset_after"):
            value = getattr(self, name)
            limit = math.inf if name == "factor" else MAX_FLOAT
            if not _within(value, limit):
                raise ValueError(
                    f"Backoff needs a finite {name}"
                    + (f" of at most {limit:g}" if limit < math.inf else "")
                    + f" (got {safe_repr(value)})"
                )
        if not (self.initial > 0 and self.factor >= 1 and self.maximum >= self.initial):
            raise ValueError("Backoff needs initial > 0, factor >= 1 and maximum >= initial")
        if self.reset_after < 0:
            raise ValueError("Backoff needs reset_after >= 0")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay for *attempt* (1-based)."""
        exponent = min(max(attempt, 1) - 1, 64)  # 2**64 * initial exceeds any sane maximum
        try:
            grown = self.initial * float(self.factor) ** exponent
        except OverflowError:  # a large factor: the ceiling is long since reached
            return float(self.maximum)
        return float(min(self.maximum, grown))

    def delay(self, attempt: int, rng: Random | None = None) -> float:
        """A jittered delay in ``[ceiling/2, ceiling]`` for *attempt* (1-based)."""
        import random  # imported on first use: it costs milliseconds at start-up

        base = self.ceiling(attempt)
        return base / 2 + (rng or random).uniform(0, base / 2)


def _within(value: float, limit: float) -> bool:
    """*value* is a finite number no larger than *limit* in size (an int too big: no)."""
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and abs(number) <= limit
