from __future__ import annotations

import random

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
