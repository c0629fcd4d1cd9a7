"""A lease in Redis, for a fleet: redis-py's ``Lock`` plus a fencing counter.

redis-py's ``Lock`` does the token-checked part: ``SET key <uuid> NX PX ttl`` to acquire, a
Lua script comparing the stored token before ``PEXPIRE`` (``reacquire``) or ``DEL``
(``release``). On acquisition a second script, run only while the key still holds this
holder's token, moves the fencing counter ``<key>:fence`` to ``max(counter + 1, Redis time in
ms)``: every acquisition gets a larger number than every earlier one, even after Redis lost
its data (persistence off, a restart).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from ._spec import HeldLease

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisLeaseBackend", "import_redis"]

_FENCE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return false
end
local now = redis.call('time')
local floor = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local last = tonumber(redis.call('get', KEYS[2]) or '0') or 0
local token = math.max(last + 1, floor)
redis.call('set', KEYS[2], string.format('%d', token))
return token
"""


def import_redis() -> Any:
    """The ``redis`` package, or an ImportError that names the extra to install."""
    try:
        import redis
    except ImportError as exc:
        raise ImportError(
            "a Redis lease or cache needs redis-py: pip install 'bgservices[redis]'"
        ) from exc
    return redis


class RedisLeaseBackend:
    """Leases in the Redis at *url*. Every command gives up after *timeout* seconds (and is
    not retried by redis-py), so that a holder notices an unreachable Redis before its renew
    deadline rather than after."""

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        redis = import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.client: Redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._fence = self.client.register_script(_FENCE)
        #: Commands sent, for the benchmark of commands per lease per minute.
        self.commands = 0

    def acquire(self, key: str, ttl: float) -> HeldLease | None:
        lock = self.client.lock(key, timeout=ttl, blocking=False, thread_local=False)
        self.commands += 1
        if not lock.acquire(blocking=False):
            return None
        self.commands += 1
        try:
            token = self._fence(keys=[key, f"{key}:fence"], args=[lock.local.token])
        except BaseException:  # held with no number: free it now rather than at its TTL
            with contextlib.suppress(Exception):
                lock.release()
            raise
        if token is None:  # it expired between the two calls (a TTL shorter than a round trip)
            return None
        now = time.time()
        return HeldLease(key, int(token), now, now, handle=lock)

    def renew(self, lease: HeldLease, ttl: float) -> bool:
        from redis.exceptions import LockNotOwnedError

        self.commands += 1
        try:
            lease.handle.reacquire()  # PEXPIRE to the lock's timeout, if the token is still ours
        except LockNotOwnedError:
            return False
        return True

    def release(self, lease: HeldLease) -> None:
        from redis.exceptions import LockError

        lock, lease.handle = lease.handle, None
        if lock is None:
            return
        self.commands += 1
        with contextlib.suppress(LockError):  # no longer ours (expired, or taken over)
            lock.release()

    def close(self) -> None:
        self.client.close()
