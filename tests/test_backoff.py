from __future__ import annotations

import math
import random
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgservices import Backoff


def test_ceiling_doubles_from_initial_and_caps_at_maximum() -> None:
    b = Backoff()
    assert [b.ceiling(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert b.ceiling(10) == pytest.approx(30.0)
    assert b.ceiling(10_000) == 30.0


@given(st.integers(min_value=1, max_value=200), st.integers(min_value=0, max_value=2**32))
def test_jittered_delay_stays_within_half_to_full_ceiling(attempt: int, seed: int) -> None:
    b = Backoff()
    delay = b.delay(attempt, random.Random(seed))
    assert b.ceiling(attempt) / 2 <= delay <= b.ceiling(attempt)


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"factor": 0.5}, {"initial": 2, "maximum": 1}, {"reset_after": -1}]
)
def test_nonsense_backoff_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": math.nan},
        {"factor": math.nan},
        {"factor": math.inf},
        {"factor": 10**400},  # too large to be a float
        {"maximum": math.inf},
        {"maximum": threading.TIMEOUT_MAX * 2},  # Event.wait would raise OverflowError
        {"reset_after": math.inf},
        {"reset_after": math.nan},
    ],
)
def test_numbers_no_clock_can_wait_for_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff needs a finite"):
        Backoff(**kwargs)


def test_the_longest_wait_options_allow_is_accepted() -> None:
    b = Backoff(initial=1.0, maximum=threading.TIMEOUT_MAX / 2)
    assert b.ceiling(10_000) == threading.TIMEOUT_MAX / 2


def test_a_large_factor_reaches_the_maximum_instead_of_overflowing() -> None:
    assert Backoff(factor=1e10, maximum=100.0).ceiling(50) == 100.0  # 1e10**49: OverflowError
    assert Backoff(factor=1e300).ceiling(3) == 30.0
