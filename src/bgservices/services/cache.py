"""``CacheWarmer``: load data into a cache every ``interval``, before anyone asks for it."""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import Problem
from ..health import HealthCheck
from ..options import option
from ..periodic import PeriodicService
from ..service import iso_time
from ..state import ServiceState
from ._memory_cache import MemoryCache

__all__ = ["CacheBackend", "CacheWarmer", "MemoryCache"]

_STOPPED: Any = object()  # what a guarded call returns when a stop came first
_ENDED = (ServiceState.STOPPED, ServiceState.FAILED)
#: How often ``wait_ready`` looks at the state between two runs, the one moment no one
#: announces to it whether a restart or a failure follows, and at a shared cache.
_RECHECK = 0.05


def _describe(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__qualname__}; repr failed: {type(exc).__qualname__}>"


@runtime_checkable
class CacheBackend(Protocol):
    """What a cache must offer the warmer (a Redis adapter fits in a dozen lines)."""

    def get(self, key: Hashable, default: Any = None) -> Any: ...

    def set(self, key: Hashable, value: Any, ttl: float) -> None: ...

    def delete(self, key: Hashable) -> None: ...


class CacheWarmer(PeriodicService):
    """Refreshes a cache every ``interval`` from ``loader()`` or from ``fetch(key)`` per key.

    Daemon-safe: a cache is a copy of data kept elsewhere, so a warm-up cut off at exit loses
    nothing. Values are replaced in place, never emptied first (refresh-ahead), and live for
    ``ttl`` (three intervals by default) so readers keep being served while a refresh runs or
    when one fails. Fetches run concurrently in up to ``max_workers`` daemon threads, and the
    loader in one: a run never outlasts ``run_timeout``, nor a key ``fetch_timeout``, whatever
    they do; what hangs is abandoned, counted and shown in status (``hung_workers``).
    """

    type_name = "cache_warmer"

    daemon_safe = True
    interval = 60.0

    loader: Callable[[], Mapping[Hashable, Any]] | None = option(
        default=None, help="Returns the whole mapping to cache; or use keys + fetch."
    )
    keys: list[Any] | Callable[[], Iterable[Any]] | None = option(
        default=None, help="The keys to warm, or a callable returning them (with fetch)."
    )
    fetch: Callable[[Any], Any] | None = option(default=None, help="Returns the value for one key.")
    max_workers: int = option(default=4, ge=1, help="Concurrent fetches.")
    ttl: float | None = option(default=None, gt=0, help="Seconds a value lives (3 x interval).")
    maxsize: int = option(default=10_000, ge=1, help="Entries the default in-memory cache holds.")
    should_cache: Callable[[Any, Any], bool] | None = option(
        default=None, help="should_cache(key, value) -> False skips the value."
    )
    backend: CacheBackend | None = option(
        default=None, help="A CacheBackend object to fill instead of the in-memory cache."
    )
    run_timeout: float | None = option(
        default=None,
        gt=0,
        help="Seconds a run may take (interval, at least 1); the rest fails as timed out.",
    )
    fetch_timeout: float | None = option(
        default=None,
        gt=0,
        help="Seconds one fetch(key) may take (run_timeout); then it is abandoned.",
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
        old: threading.Condition | None = getattr(self, "_ready_cond", None)
        same_process = getattr(self, "_pid", None) == os.getpid()
        self._pid = os.getpid()
        self._ready_cond = threading.Condition()  # guards _ready and _between_runs
        self._ready = False
        self._between_runs = False
        self._work = threading.Condition()  # a tick waits on it for its workers, or a stop
        self._hung: list[threading.Thread] = []
        self.runs = 0
        self.keys_warmed = 0
        self.failures = 0
        self.total_failures = 0
        self.timeouts = 0
        self.last_duration: float | None = None
        self.last_success_at: float | None = None
        if old is not None and same_process:  # waiters on the old run move to this one
            with old:
                old.notify_all()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first warm-up has completed.

        False on timeout, and at once when the service has failed, stopped or is stopping:
        it can no longer become ready, so no wait is left without an end. With a shared
        backend (``RedisCache``), a warm-up by any process's warmer counts: a follower waiting
        in STANDBY returns once the leader has filled the cache (it asks every 50 ms).
        """
        shared: Callable[[], bool] | None = getattr(self.cache, "is_ready", None)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # The state is read outside our lock: the framework may call init_state (which
            # takes our lock) while holding its own. So is the shared cache (a Redis call).
            ended = self.state in _ENDED
            shared_ready = shared is not None and self._shared_ready(shared, ended)
            cond = self._ready_cond
            with cond:
                if cond is not self._ready_cond:
                    continue  # a new launch replaced it
                if self._ready or shared_ready:
                    return True
                if ended or self.stopping:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # Neither the state that follows a run nor another process's warm-up is
                # announced to us: look again soon.
                if self._between_runs or shared is not None:
                    remaining = min(remaining or _RECHECK, _RECHECK)
                cond.wait(remaining)

    def _shared_ready(self, is_ready: Callable[[], bool], ended: bool) -> bool:
        """A shared cache's readiness, asked only while ours is still to come."""
        return not (self._ready or ended or self.stopping) and is_ready()

    @property
    def ready(self) -> bool:
        return self._ready

    def run(self) -> None:
        self._notify_ready(between_runs=False)
        super().run()

    def on_stop_requested(self) -> None:
        super().on_stop_requested()
        with self._work:
            self._work.notify_all()
        self._notify_ready()

    def teardown(self) -> None:
        super().teardown()
        self._notify_ready(between_runs=True)

    def _notify_ready(self, *, ready: bool = False, between_runs: bool | None = None) -> None:
        with self._ready_cond:
            self._ready = self._ready or ready
            if between_runs is not None:
                self._between_runs = between_runs
            self._ready_cond.notify_all()

    def _budget(self) -> tuple[float, float]:
        """Seconds for a whole run, and for one key's fetch."""
        run = self.run_timeout if self.run_timeout is not None else max(self.interval, 1.0)
        return run, min(run, self.fetch_timeout if self.fetch_timeout is not None else run)

    def check_health(self) -> HealthCheck | None:
        """Degraded while the cached data is older than its TTL (refreshes keep failing), or
        while a shared backend (``RedisCache``) cannot be reached and serves its last values."""
        if getattr(self.cache, "degraded", False):
            return HealthCheck.degraded("shared cache unreachable: serving the last values read")
        ttl = self.ttl or 3 * self.interval
        loaded = self.last_success_at
        if loaded is not None and time.time() - loaded > ttl:
            return HealthCheck.degraded(
                f"cached data is {time.time() - loaded:.0f}s old (ttl {ttl:g}s)"
            )
        return None

    def tick(self) -> None:
        began = time.monotonic()
        deadline = began + self._budget()[0]
        ttl = self.ttl or 3 * self.interval
        self._hung = [t for t in self._hung if t.is_alive()]
        if self.loader is not None:
            loaded = self._guarded(self.loader, "loader", deadline)
            if loaded is _STOPPED:
                return
            items: Iterable[tuple[Any, Any]] = loaded.items()
            failures = 0
        else:
            keys = self.keys
            if callable(keys):
                keys = self._guarded(keys, "keys", deadline)
                if keys is _STOPPED:
                    return
            items, failures = self._fetch_all(list(keys or ()), deadline)
        warmed = 0
        for key, value in items:
            if self.should_cache is not None and not self.call_safely(
                self.should_cache, key, value, what="should_cache"
            ):
                continue
            self.cache.set(key, value, ttl)
            warmed += 1
        mark_ready = getattr(self.cache, "mark_ready", None)  # a shared backend's followers
        if mark_ready is not None:
            mark_ready(ttl)  # before the figures: a run it fails is not counted as a success
        self.runs += 1
        self.keys_warmed, self.failures = warmed, failures
        self.total_failures += failures
        self.last_duration = round(time.monotonic() - began, 6)
        self.last_success_at = time.time()
        self._notify_ready(ready=True)
        self._emit("cache.warmed", keys=warmed, failures=failures, seconds=self.last_duration)

    def _guarded(self, function: Callable[[], Any], what: str, deadline: float) -> Any:
        """``function()`` (the loader, or the keys callable) in a daemon thread, until *deadline*.

        One still running past it is left to finish on its own (a thread cannot be killed),
        reported in status as a hung worker, and not called again until it has returned: the
        run fails with a ``TimeoutError``. ``_STOPPED`` if a stop came first.
        """
        name = f"bgservices:{self.name}:{what}"
        if any(t.name == name for t in self._hung):
            self.timeouts += 1
            raise TimeoutError(f"the previous {what}() call is still running; not calling again")
        outcome: list[Any] = []

        def call() -> None:
            try:
                result: Any = ("value", function())
            except BaseException as exc:  # handed to the tick, which reports it
                result = ("error", exc)
            with self._work:
                outcome.append(result)
                self._work.notify_all()

        thread = threading.Thread(target=call, name=name, daemon=True)
        budget = max(0.0, deadline - time.monotonic())
        with self._work:
            thread.start()
            self._work.wait_for(lambda: outcome or self.stopping, budget)
            if not outcome:
                self._hung.append(thread)
                if self.stopping:
                    return _STOPPED
                self.timeouts += 1
                self._emit(f"cache.{what}_timed_out", "warning", seconds=round(budget, 3))
                raise TimeoutError(f"{what}() did not return within {budget:g}s (left running)")
        kind, value = outcome[0]
        if kind == "error":
            raise value
        return value

    def _fetch_all(self, keys: list[Any], deadline: float) -> tuple[list[tuple[Any, Any]], int]:
        """Fetch every key concurrently within the run's deadline; a failing key is counted.

        A fetch that outlives ``fetch_timeout`` is abandoned (its thread is left to finish,
        reported as hung) and a fresh worker takes the remaining keys, so one hung key never
        stalls the rest; keys still unfetched at ``run_timeout`` fail as timed out.
        """
        fetch = self.fetch
        assert fetch is not None  # check_options guarantees it
        run_budget, key_budget = self._budget()
        batch = _FetchBatch(self, fetch, keys, key_budget)
        with self._work:
            batch.spawn(min(self.max_workers, len(keys), self._spare_threads()))
            while batch.pending() and batch.active and not self.stopping:
                now = time.monotonic()
                batch.expire(now)
                if now >= deadline or not batch.pending():
                    break
                self._work.wait(min(deadline, batch.next_expiry(now)) - now)
            batch.closed = True
            self._hung.extend(batch.abandoned())
            unfinished = [] if self.stopping else batch.unfinished()
        for key in batch.timed_out:
            self._emit("cache.fetch_timed_out", "warning", key=_describe(key), seconds=key_budget)
        if unfinished:
            self._emit("cache.run_timed_out", "warning", keys=len(unfinished), seconds=run_budget)
        for key, exc in batch.errors:
            self._emit("cache.fetch_failed", "warning", key=_describe(key), error=_describe(exc))
        timeouts = len(batch.timed_out) + len(unfinished)
        self.timeouts += timeouts
        return batch.results, len(batch.errors) + timeouts

    def _spare_threads(self) -> int:
        """Workers a run may still start: hung ones count, up to 2 x ``max_workers``."""
        return max(0, 2 * self.max_workers - sum(t.is_alive() for t in self._hung))

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
            "timeouts": self.timeouts,
            "hung_workers": sum(t.is_alive() for t in self._hung),
            "last_duration": self.last_duration,
            "last_success_at": iso_time(self.last_success_at),
            "callback_errors": self.callback_errors,
            **({"cache": self.cache.stats()} if hasattr(self.cache, "stats") else {}),
        }


class _FetchBatch:
    """The keys of one run and the daemon workers fetching them; guarded by ``warmer._work``."""

    def __init__(
        self, warmer: CacheWarmer, fetch: Callable[[Any], Any], keys: list[Any], budget: float
    ) -> None:
        self._warmer, self._fetch, self._budget = warmer, fetch, budget
        self._todo = collections.deque(keys)
        self._in_flight: dict[int, tuple[Any, float]] = {}  # worker number -> (key, began)
        self._threads: dict[int, threading.Thread] = {}
        self._given_up: list[threading.Thread] = []
        self.active = 0  # workers started and neither returned nor given up on
        self.results: list[tuple[Any, Any]] = []
        self.errors: list[tuple[Any, BaseException]] = []
        self.timed_out: list[Any] = []
        self.closed = False

    def pending(self) -> bool:
        return bool(self._todo or self._in_flight)

    def unfinished(self) -> list[Any]:
        return [key for key, _ in self._in_flight.values()] + list(self._todo)

    def abandoned(self) -> list[threading.Thread]:
        """Workers given up on, or still fetching when the run ended."""
        return self._given_up + [self._threads[w] for w in self._in_flight]

    def next_expiry(self, now: float) -> float:
        return min((began + self._budget for _, began in self._in_flight.values()), default=now + 1)

    def expire(self, now: float) -> None:
        """Give up on fetches past their budget; replace their workers if keys remain."""
        for worker, (key, began) in list(self._in_flight.items()):
            if now - began >= self._budget:
                del self._in_flight[worker]
                self.timed_out.append(key)
                self._given_up.append(self._threads[worker])
                self.active -= 1
                if self._todo and self._warmer._spare_threads() > len(self._given_up) + self.active:
                    self.spawn(1)

    def spawn(self, count: int) -> None:
        for _ in range(count):
            worker = len(self._threads) + 1
            thread = self._threads[worker] = threading.Thread(
                target=self._work,
                args=(worker,),
                name=f"bgservices:{self._warmer.name}:fetch",
                daemon=True,
            )
            self.active += 1
            thread.start()

    def _work(self, worker: int) -> None:
        cond, warmer = self._warmer._work, self._warmer
        try:
            while True:
                with cond:
                    if self.closed or not self._todo or warmer.stopping:
                        return
                    key = self._todo.popleft()
                    self._in_flight[worker] = (key, time.monotonic())
                try:
                    value, error = self._fetch(key), None
                except Exception as exc:
                    value, error = None, exc
                with cond:
                    if self._in_flight.pop(worker, None) is None or self.closed:
                        worker = 0  # given up on: the key was counted as timed out
                        return
                    if error is None:
                        self.results.append((key, value))
                    else:
                        self.errors.append((key, error))
                    cond.notify_all()
        finally:
            if worker:
                with cond:
                    self.active -= 1
                    cond.notify_all()
