"""``CacheWarmer``: load data into a cache every ``interval``, before anyone asks for it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import cachetools

from ..errors import Problem
from ..health import HealthCheck
from ..options import option
from ..periodic import PeriodicService
from ..service import iso_time

__all__ = ["CacheBackend", "CacheWarmer", "MemoryCache"]

_MISSING = object()


@runtime_checkable
class CacheBackend(Protocol):
    """What a cache must offer the warmer (a Redis adapter fits in a dozen lines)."""

    def get(self, key: Hashable, default: Any = None) -> Any: ...

    def set(self, key: Hashable, value: Any, ttl: float) -> None: ...

    def delete(self, key: Hashable) -> None: ...


class MemoryCache:
    """A thread-safe in-memory cache with a TTL per entry (cachetools' TLRUCache, locked).

    cachetools caches are not thread-safe by themselves; one lock serialises access.
    """

    def __init__(self, maxsize: int = 10_000, timer: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._data: cachetools.TLRUCache[Hashable, tuple[Any, float]] = cachetools.TLRUCache(
            maxsize, ttu=lambda _key, entry, now: now + entry[1], timer=timer
        )

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            entry = self._data.get(key, _MISSING)
        return default if entry is _MISSING else entry[0]  # type: ignore[index]

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        with self._lock:
            self._data[key] = (value, ttl)

    def delete(self, key: Hashable) -> None:
        with self._lock:
            self._data.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            self._data.expire()
            return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _MISSING) is not _MISSING


class CacheWarmer(PeriodicService):
    """Refreshes a cache every ``interval`` from ``loader()`` or from ``fetch(key)`` per key.

    Daemon-safe: a cache is a copy of data kept elsewhere, so a warm-up cut off at exit loses
    nothing. Values are replaced in place, never emptied first (refresh-ahead), and live for
    ``ttl`` (three intervals by default) so readers keep being served while a refresh runs or
    when one fails. Fetches run concurrently in up to ``max_workers`` daemon threads.
    """

    type_name = "cache_warmer"

    daemon_safe = True
    interval = 60.0

    loader: Callable[[], Mapping[Hashable, Any]] | None = option(
        None, help="Returns the whole mapping to cache; or use keys + fetch."
    )
    keys: list[Any] | Callable[[], Iterable[Any]] | None = option(
        None, help="The keys to warm, or a callable returning them (with fetch)."
    )
    fetch: Callable[[Any], Any] | None = option(None, help="Returns the value for one key.")
    max_workers: int = option(4, ge=1, help="Concurrent fetches.")
    ttl: float | None = option(None, gt=0, help="Seconds a value lives (3 x interval).")
    maxsize: int = option(10_000, ge=1, help="Entries the default in-memory cache holds.")
    should_cache: Callable[[Any, Any], bool] | None = option(
        None, help="should_cache(key, value) -> False skips the value."
    )
    backend: CacheBackend | None = option(
        None, help="A CacheBackend object to fill instead of the in-memory cache."
    )

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        problems = super().check_options(values)
        has_loader = values.get("loader") is not None
        has_keys = values.get("keys") is not None or values.get("fetch") is not None
        if has_loader == has_keys:
            problems.append(Problem("loader", "give either loader, or keys together with fetch"))
        elif has_keys and (values.get("keys") is None or values.get("fetch") is None):
            missing = "keys" if values.get("keys") is None else "fetch"
            problems.append(Problem(missing, "keys and fetch go together"))
        return problems

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: The cache the application reads; the same object for the service's whole life.
        self.cache: CacheBackend = self.backend or MemoryCache(self.maxsize)

    def init_state(self) -> None:
        super().init_state()
        self._ready = threading.Event()
        self.runs = 0
        self.keys_warmed = 0
        self.failures = 0
        self.total_failures = 0
        self.last_duration: float | None = None
        self.last_success_at: float | None = None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first warm-up has completed; False on timeout."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def check_health(self) -> HealthCheck | None:
        """Degraded while the cached data is older than its TTL (refreshes keep failing)."""
        ttl = self.ttl or 3 * self.interval
        loaded = self.last_success_at
        if loaded is not None and time.time() - loaded > ttl:
            return HealthCheck.degraded(
                f"cached data is {time.time() - loaded:.0f}s old (ttl {ttl:g}s)"
            )
        return None

    def tick(self) -> None:
        began = time.monotonic()
        ttl = self.ttl or 3 * self.interval
        if self.loader is not None:
            items: Iterable[tuple[Any, Any]] = self.loader().items()
            failures = 0
        else:
            items, failures = self._fetch_all()
        warmed = 0
        for key, value in items:
            if self.should_cache is not None and not self.call_safely(
                self.should_cache, key, value, what="should_cache"
            ):
                continue
            self.cache.set(key, value, ttl)
            warmed += 1
        self.runs += 1
        self.keys_warmed, self.failures = warmed, failures
        self.total_failures += failures
        self.last_duration = round(time.monotonic() - began, 6)
        self.last_success_at = time.time()
        self._ready.set()
        self._emit("cache.warmed", keys=warmed, failures=failures, seconds=self.last_duration)

    def _fetch_all(self) -> tuple[list[tuple[Any, Any]], int]:
        """Fetch every key concurrently; a failing key is logged and counted, not fatal."""
        keys = list(self.keys() if callable(self.keys) else self.keys or ())
        todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for key in keys:
            todo.put(key)
        results: list[tuple[Any, Any]] = []
        errors: list[tuple[Any, BaseException]] = []
        fetch = self.fetch
        assert fetch is not None  # check_options guarantees it

        def worker() -> None:
            while not self.stopping:
                try:
                    key = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results.append((key, fetch(key)))
                except Exception as exc:
                    errors.append((key, exc))

        # Daemon threads, not a ThreadPoolExecutor: its workers are joined at interpreter exit,
        # which would let a hung fetch block the exit of a daemon-safe service.
        workers = [
            threading.Thread(target=worker, name=f"bgservices:{self.name}:fetch", daemon=True)
            for _ in range(min(self.max_workers, len(keys)))
        ]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        for key, exc in errors:
            self._emit("cache.fetch_failed", "warning", key=repr(key), error=repr(exc))
        return results, len(errors)

    def summary(self) -> str:
        """One line for status tables: runs, keys cached, failures."""
        return f"runs={self.runs} keys={self.keys_warmed} failures={self.failures}"

    def stats(self) -> dict[str, Any]:
        return {
            **super().stats(),
            "ready": self.ready,
            "runs": self.runs,
            "keys_warmed": self.keys_warmed,
            "failures": self.failures,
            "total_failures": self.total_failures,
            "last_duration": self.last_duration,
            "last_success_at": iso_time(self.last_success_at),
            "callback_errors": self.callback_errors,
        }
