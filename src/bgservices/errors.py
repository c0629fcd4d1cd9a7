"""Exceptions that bgservices raises, or that services raise to talk to it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "DoNotRestart", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration: where (a dotted path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Invalid configuration; carries every problem found, each with its path.

    ``str(err)`` lists the problems one per line, so nothing is reported one at a time.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def prefixed(self, prefix: str) -> ConfigError:
        """The same problems, their paths placed under *prefix* (``services.ping``)."""
        return ConfigError(
            Problem(f"{prefix}.{p.path}" if p.path else prefix, p.message) for p in self.problems
        )


class DoNotRestart(Exception):
    """Raise from ``setup()``, ``run()`` or ``tick()`` to end a service for good.

    The service ends as STOPPED whatever its restart policy; the message is logged.
    """
