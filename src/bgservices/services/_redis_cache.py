"""``RedisCache``: a ``CacheBackend`` shared by every process, with a near-cache in each.

The warmer that holds the lease writes; every process reads. Values are encoded with msgspec's
MessagePack (never pickle: a value read from the network must not be able to run code), so
they come back as plain types (dicts, lists, str, numbers, ...). Redis keeps each value's TTL.
Each process keeps the values it read in a small near-cache for ``near_ttl`` seconds, so a
read is a dict lookup in microseconds, not a round trip.

When Redis cannot be reached, reads serve the near-cache's last values (however old), the
cache reports ``degraded``, and Redis is tried again after a backoff (0.1 s doubling to 5 s,
jittered), by one reader at a time: no request waits on a dead server twice in a row.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..leases._redis import import_redis

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisCache"]

_MISSING = object()
_READY = "__ready__"


class RedisCache:
    """A ``CacheBackend`` in the Redis at *url*, under *prefix*; keys are encoded as JSON.

    *near_ttl*: seconds a value read from Redis is served from this process's memory before
    it is read again (how stale a follower may be). *maxsize*: values kept near.
    *timeout*: seconds a Redis command may take before Redis counts as down.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bgservices:cache:",
        near_ttl: float = 1.0,
        maxsize: int = 10_000,
        timeout: float = 0.5,
        value_type: Any = Any,
    ) -> None:
        redis = import_redis()
        import msgspec
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.client: Redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self.prefix, self.near_ttl, self.maxsize = prefix, near_ttl, maxsize
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(value_type).decode
        self._key = msgspec.json.Encoder().encode
        self._lock = threading.Lock()  # guards the near-cache (_near) and the retry state
        # key -> (value, read at (monotonic)); the last value seen, even past near_ttl
        self._near: dict[Hashable, tuple[Any, float]] = {}
        self._retry_at = 0.0  # monotonic: Redis is not tried before this while degraded
        self._backoff = 0.0
        self._probe_time = 2 * timeout  # the most a probe can take: connect, then the command
        self.degraded = False
        self.errors = 0
        self.last_error: str | None = None
        self.near_hits = 0
        self.redis_reads = 0

    # -- CacheBackend --------------------------------------------------------------------

    def get(self, key: Hashable, default: Any = None) -> Any:
        now = time.monotonic()
        with self._lock:
            entry = self._near.get(key)
            fresh = entry is not None and now - entry[1] < self.near_ttl
            if fresh or not self._may_ask(now):
                self.near_hits += 1
                return default if entry is None or entry[0] is _MISSING else entry[0]
        try:
            raw: bytes | None = self.client.get(self._name(key))  # type: ignore[assignment]
        except Exception as exc:  # down: serve the last value seen, however old
            self._failed(exc)
            return default if entry is None or entry[0] is _MISSING else entry[0]
        self._recovered()
        value = _MISSING if raw is None else self._decode(raw)
        with self._lock:
            self.redis_reads += 1
            self._remember(key, value, now)
        return default if value is _MISSING else value

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        data = self._encode(value)  # a value msgspec cannot encode raises TypeError here
        # Kept near as a reader decodes it (a tuple as a list, ...): its type never changes
        # when the near copy ages out and the value is read back from Redis.
        value = self._decode(data)
        with self._lock:
            self._remember(key, value, time.monotonic())
        self._call(lambda: self.client.set(self._name(key), data, px=max(1, int(ttl * 1000))))

    def delete(self, key: Hashable) -> None:
        with self._lock:
            self._near.pop(key, None)
        self._call(lambda: self.client.delete(self._name(key)))

    # -- readiness, for CacheWarmer.wait_ready in a follower -------------------------------

    def mark_ready(self, ttl: float) -> None:
        """A warm-up has completed (called by the warmer that holds the lease)."""
        self._call(lambda: self.client.set(self._name(_READY), b"1", px=max(1, int(ttl * 1000))))

    def is_ready(self) -> bool:
        """Whether some warmer has completed a warm-up into this cache: one ``EXISTS``.

        False while Redis cannot be reached (asked again only after the backoff).
        """
        with self._lock:
            if not self._may_ask(time.monotonic()):
                return False
        try:
            found = bool(self.client.exists(self._name(_READY)))
        except Exception as exc:
            self._failed(exc)
            return False
        self._recovered()
        return found

    def stats(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "degraded": self.degraded,
            "near_entries": len(self._near),
            "near_hits": self.near_hits,
            "redis_reads": self.redis_reads,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        self.client.close()

    # -- internals -------------------------------------------------------------------------

    def _name(self, key: Hashable) -> str:
        return self.prefix + self._key(key).decode()

    def _remember(self, key: Hashable, value: Any, now: float) -> None:
        """Keep *value* near (the lock is held); the oldest entry goes when full."""
        near = self._near
        near.pop(key, None)
        if len(near) >= self.maxsize:
            del near[next(iter(near))]
        near[key] = (value, now)

    def _may_ask(self, now: float) -> bool:
        """Whether this caller may go to Redis (the lock is held).

        Always while Redis is reachable. While it is not, one caller once the retry is due:
        it pushes the retry past its own probe, so concurrent readers keep serving near values
        instead of each waiting on the dead server; its failure sets the next retry.
        """
        if not self.degraded:
            return True
        if now < self._retry_at:
            return False
        self._retry_at = now + self._probe_time
        return True

    def _call(self, command: Any) -> None:
        try:
            command()
        except Exception as exc:
            self._failed(exc)
            raise
        self._recovered()

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.degraded = True
            self._backoff = min(5.0, max(0.1, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)

    def _recovered(self) -> None:
        if self.degraded:
            with self._lock:
                self.degraded, self._backoff = False, 0.0
