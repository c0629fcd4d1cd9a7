"""``Deadlines``: the watchdog's per-service deadlines, replaced, cleared and taken when due."""

from __future__ import annotations

from bgservices._deadlines import Deadlines


def test_the_earliest_and_what_passed_follow_the_latest_deadline_of_each_name() -> None:
    deadlines = Deadlines()
    assert deadlines.earliest() is None and deadlines.passed(100.0) == set()
    deadlines.put("a", 10.0)
    deadlines.put("b", 5.0)
    deadlines.put("b", 20.0)  # moved on (a heartbeat): its 5.0 no longer counts
    deadlines.put("c", 7.0)
    deadlines.put("c", None)  # no deadline any more
    assert deadlines.earliest() == 10.0
    assert deadlines.passed(9.0) == set()
    assert deadlines.passed(10.0) == {"a"}  # at its deadline: due
    assert deadlines.passed(10.0) == set()  # taken off until put again
    assert deadlines.earliest() == 20.0
    deadlines.put("a", 15.0)
    assert deadlines.passed(30.0) == {"a", "b"}
    assert deadlines.earliest() is None


def test_putting_the_same_deadline_again_is_one_entry() -> None:
    deadlines = Deadlines()
    for _ in range(1000):
        deadlines.put("a", 10.0)
    assert len(deadlines._heap) == 1
    assert deadlines.passed(10.0) == {"a"}
