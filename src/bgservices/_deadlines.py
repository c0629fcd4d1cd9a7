"""What the watchdogs share: ``Deadlines``, when each service's health could next change by
time alone, and ``LINGER``, how long an idle watchdog thread waits before it ends.

``Deadlines`` is a heap keyed by time, with each service's current deadline beside it:
putting a new one leaves the old entry in the heap, skipped when it comes up. So a watchdog
round costs what changed and what fell due, not a pass over every service.
"""

from __future__ import annotations

import heapq

__all__ = ["LINGER", "Deadlines"]

#: How long a watchdog thread (the health watchdog, a loop's blocked-loop monitor) waits for
#: more work before it ends: services busy a few times a second keep one thread, an idle
#: supervisor has none, and a burst of changes does not start a thread per change.
LINGER = 1.0


class Deadlines:
    """Per-name deadlines; one thread uses it (the watchdog)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._current: dict[str, float] = {}
        #: the deadline each service was last judged at, so that a passed one is judged once
        self.judged: dict[str, float] = {}

    def put(self, name: str, when: float | None) -> None:
        """*name*'s deadline is now *when* (None: it has none)."""
        if when is None:
            self._current.pop(name, None)
        elif self._current.get(name) != when:
            self._current[name] = when
            heapq.heappush(self._heap, (when, name))

    def passed(self, now: float) -> set[str]:
        """The names whose deadline is at or before *now*; each is taken off until put again."""
        heap, current, found = self._heap, self._current, set()
        while heap and heap[0][0] <= now:
            when, name = heapq.heappop(heap)
            if current.get(name) == when:
                del current[name]
                found.add(name)
        return found

    def earliest(self) -> float | None:
        """The earliest deadline put; None if there is none."""
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # replaced or cleared since it was pushed
        return heap[0][0] if heap else None
