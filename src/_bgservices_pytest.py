"""bgservices' pytest plugin (entry point ``pytest11``): ``bgservices_*`` fixtures.

It lives outside the ``bgservices`` package so that loading it at pytest start-up costs
nothing: ``bgservices`` itself is imported only when a test uses one of the fixtures.

- ``bgservices_supervisor``: a factory, ``make(*services, **supervisor_options)``; every
  supervisor it made is stopped after the test.
- ``bgservices_clock``: a ``bgservices.testing.FakeClock``.
- ``bgservices_events``: the events captured during the test (``capture_events()``).
- ``bgservices_hygiene``: fails a test that leaves a ``bgservices:`` thread running or a
  SIGINT/SIGTERM handler changed. Opt in per test with the fixture or the
  ``@pytest.mark.bgservices_hygiene`` marker, or for every test with the ini option
  ``bgservices_hygiene = true``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bgservices import Service, Supervisor
    from bgservices.testing import CapturedEvents, FakeClock

_HYGIENE = "bgservices_hygiene"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _HYGIENE,
        "Check every test for leftover bgservices threads and changed signal handlers.",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_HYGIENE}: fail the test if it leaves a bgservices thread or a changed signal handler",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    everywhere = bool(config.getini(_HYGIENE))
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is None or _HYGIENE in names:
            continue
        if everywhere or item.get_closest_marker(_HYGIENE) is not None:
            names.insert(0, _HYGIENE)  # first in, so it is torn down last


@pytest.fixture
def bgservices_hygiene() -> Iterator[None]:
    """Fail the test if it leaves a ``bgservices:`` thread or a changed signal handler."""
    from bgservices.testing import hygiene

    with hygiene():
        yield


@pytest.fixture
def bgservices_clock() -> FakeClock:
    """A fake clock at 0.0, seeded: ``Supervisor(clock=bgservices_clock)``."""
    from bgservices.testing import FakeClock

    return FakeClock()


@pytest.fixture
def bgservices_events() -> Iterator[CapturedEvents]:
    """The events bgservices reports during the test, as dicts (``capture_events()``)."""
    from bgservices.testing import capture_events

    with capture_events() as events:
        yield events


@pytest.fixture
def bgservices_supervisor() -> Iterator[Callable[..., Supervisor]]:
    """``make(*services, **options)``: a ``Supervisor`` (not started) stopped after the test.

    ``shutdown_timeout`` defaults to 5 seconds here, so a stuck service fails fast.
    """
    from bgservices import Supervisor

    made: list[Supervisor] = []

    def make(*services: Service, **options: Any) -> Supervisor:
        options.setdefault("shutdown_timeout", 5.0)
        sup = Supervisor(services, **options)
        made.append(sup)
        return sup

    yield make
    for sup in reversed(made):
        sup.stop()
