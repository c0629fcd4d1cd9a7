"""Logging that can never break the life cycle."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["log_safely"]


def log_safely(logger: Any, level: str, event: str, **fields: Any) -> None:
    """``logger.<level>(event, **fields)``; if the logging setup is broken, say so on stderr."""
    try:
        getattr(logger, level)(event, **fields)
    except Exception as exc:
        print(f"bgservices: could not log {event}: {exc!r}", file=sys.stderr)
