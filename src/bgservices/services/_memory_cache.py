"""``MemoryCache``: an in-memory TTL cache whose reads never take a lock.

Readers are the request path, so a read is one dict lookup and one clock call: entries are
immutable tuples replaced whole, and a replaced key never leaves the dict in between, so a
reader sees the old entry or the new one, never a torn or missing value. Writers (the warmer
thread, usually the only one) serialise on a lock readers never touch, and expire and evict
as they write.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["MemoryCache"]

_MISSING: Any = object()
#: The expiry heap is rebuilt from the live entries once it holds this many times more items
#: (each write of an existing key leaves one stale item behind): amortised O(1) per write.
_HEAP_SLACK = 2


class MemoryCache:
    """A thread-safe in-memory cache with a TTL per entry; reads take no lock.

    An entry lives while ``timer() < set time + ttl``. Over ``maxsize``, a write drops the
    expired entries first, then the ones closest to expiry (with one TTL for every key, as a
    warmer writes them: the oldest written). A write with ``ttl <= 0`` removes the key.
    """

    def __init__(self, maxsize: int = 10_000, timer: Callable[[], float] = time.monotonic) -> None:
        self.maxsize = maxsize
        self.timer = timer
        # key -> (value, expires, write number): replaced whole, read without a lock.
        self._entries: dict[Hashable, tuple[Any, float, int]] = {}
        # (expires, write number, key), a min-heap: items whose write number no longer
        # matches the entry are stale and skipped. Guarded by _write, as are all writes.
        self._expiries: list[tuple[float, int, Hashable]] = []
        self._writes = itertools.count()
        self._write = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        entry = self._entries.get(key)
        if entry is None or not self.timer() < entry[1]:
            return default
        return entry[0]

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        entries = self._entries
        with self._write:
            now = self.timer()
            expires = now + ttl
            self._expire(now)
            if not now < expires:
                entries.pop(key, None)
                return
            if key not in entries and len(entries) >= self.maxsize:
                self._evict(len(entries) - self.maxsize + 1)
            number = next(self._writes)
            entries[key] = (value, expires, number)  # in place: never absent in between
            heapq.heappush(self._expiries, (expires, number, key))

    def delete(self, key: Hashable) -> None:
        with self._write:
            self._entries.pop(key, None)  # its heap item is stale from now on

    def __len__(self) -> int:
        with self._write:
            self._expire(self.timer())
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def _expire(self, now: float) -> None:
        """Drop every entry expired at *now* (the caller holds ``_write``)."""
        entries, heap = self._entries, self._expiries
        if len(heap) > _HEAP_SLACK * len(entries) + 16:
            heap[:] = [(e[1], e[2], k) for k, e in entries.items()]
            heapq.heapify(heap)
        while heap and not now < heap[0][0]:
            _, number, key = heapq.heappop(heap)
            self._drop(key, number)

    def _evict(self, count: int) -> None:
        """Drop *count* live entries, those closest to expiry first (caller holds ``_write``)."""
        heap = self._expiries
        while count > 0 and heap:
            _, number, key = heapq.heappop(heap)
            count -= self._drop(key, number)

    def _drop(self, key: Hashable, number: int) -> bool:
        """Remove *key* if its entry is still the write numbered *number*."""
        entry = self._entries.get(key)
        if entry is None or entry[2] != number:
            return False
        del self._entries[key]
        return True
