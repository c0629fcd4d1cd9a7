"""Lease backends when a step of an acquisition fails: nothing is left held by nobody."""

from __future__ import annotations

import pytest

from ._redis_server import RedisServer


def test_a_redis_acquisition_whose_fence_fails_frees_the_key(redis_server: RedisServer) -> None:
    from redis.exceptions import ResponseError

    from bgservices.leases import RedisLeaseBackend

    backend = RedisLeaseBackend(redis_server.url)
    try:
        backend.client.hset("job:fence", "not", "a counter")  # the fence script's GET fails
        with pytest.raises(ResponseError):
            backend.acquire("job", 30.0)
        assert backend.client.get("job") is None  # not held by nobody for 30 s
    finally:
        backend.close()
