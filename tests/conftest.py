"""Shared fixtures, on bgservices.testing and its pytest plugin. Every test must leave no
bgservices thread, no changed signal handler and no disallowed state move; logger levels and
propagation a test changed are put back."""

from __future__ import annotations

import os

os.environ["BGSERVICES_STRICT"] = "1"  # a disallowed state move raises, here and in subprocesses

import logging
from collections.abc import Callable, Iterator

import pytest

from bgservices import Supervisor, state
from bgservices.testing import CapturedEvents, capture_events

from ._process import free_port

# No test may leave a bgservices thread or a changed signal handler: the plugin's
# ``bgservices_hygiene`` check runs for every test (``bgservices_hygiene = true`` in pyproject).


def _logger_settings() -> dict[str, tuple[int, bool]]:
    loggers = [logging.root, *logging.root.manager.loggerDict.values()]
    return {
        logger.name: (logger.level, logger.propagate)
        for logger in loggers
        if isinstance(logger, logging.Logger)
    }


@pytest.fixture(autouse=True)
def hygiene() -> Iterator[None]:
    levels = _logger_settings()
    yield
    for name in _logger_settings():  # levels and propagation a test changed: put back
        logger = logging.root if name == "root" else logging.getLogger(name)
        logger.level, logger.propagate = levels.get(name, (logging.NOTSET, True))
    logging.root.manager._clear_cache()  # isEnabledFor() caches answers per logger
    assert not state.VIOLATIONS, f"disallowed state moves: {state.VIOLATIONS}"


#: What the ``recorder`` fixture gives, for annotations.
Recorder = CapturedEvents


@pytest.fixture
def recorder() -> Iterator[CapturedEvents]:
    """Every event of the test, as dicts (``bgservices.testing.capture_events``)."""
    with capture_events() as events:
        yield events


@pytest.fixture
def make_supervisor(
    bgservices_supervisor: Callable[..., Supervisor],
) -> Callable[..., Supervisor]:
    """Build supervisors that are always stopped after the test (the plugin's factory)."""
    return bgservices_supervisor


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    return free_port()
