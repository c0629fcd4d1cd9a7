"""Lease backends when a step of an acquisition fails: nothing is left held by nobody."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bgservices import Service, ServiceState, Supervisor
from bgservices.leases import FileLeaseBackend, Lease
from bgservices.testing import FakeClock

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


class Holds(Service):
    """Runs until stopped."""

    def run(self) -> None:
        while not self.wait(30):
            pass


def test_a_standby_takes_its_retry_delay_and_lease_times_from_the_service_clock(
    make_supervisor: Callable[..., Supervisor], tmp_path: Path
) -> None:
    path = str(tmp_path / "job.lock")
    other = FileLeaseBackend()
    held = other.acquire(path, 30.0)  # another holder: the service waits in STANDBY
    assert held is not None
    clock = FakeClock(wall=1_700_000_000.0, uniform=lambda low, high: high)
    service = Holds(lease=Lease(path=path, retry_interval=10.0))
    sup = make_supervisor(service, clock=clock)
    try:
        sup.start()
        assert service.state is ServiceState.STANDBY
        clock.wait_for_sleepers(1)
        assert clock.next_deadline == 10.0  # retry_interval * the clock's draw (its high)
    finally:
        other.release(held)
    clock.advance(10.0)
    assert service.wait_for_state(ServiceState.RUNNING, timeout=5)
    status = service.status()["lease"]
    assert status["acquired_at"] == status["last_renewed"] == "2023-11-14T22:13:30+00:00"
