"""Lease backends when a step of an acquisition fails: nothing is left held by nobody."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bgservices import Service, ServiceState, Supervisor
from bgservices.leases import FileLeaseBackend, HeldLease, Lease
from bgservices.testing import FakeClock

from ..conftest import Recorder
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


class _HangingRenewals(FileLeaseBackend):
    """A real file lease whose renewals hang until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.renewing = threading.Event()
        self.let_go = threading.Event()

    def renew(self, lease: HeldLease, ttl: float) -> bool:
        self.renewing.set()
        self.let_go.wait(30)
        return super().renew(lease, ttl)


def test_a_cycle_ends_though_a_renewal_hangs_and_the_hang_is_reported(
    make_supervisor: Callable[..., Supervisor], recorder: Recorder, tmp_path: Path
) -> None:
    backend = _HangingRenewals()
    service = Holds(lease=Lease(backend=backend, key=str(tmp_path / "job.lock"), ttl=0.6))
    sup = make_supervisor(service, shutdown_timeout=5.0)
    sup.start()
    try:
        assert backend.renewing.wait(5)  # the renewer is stuck in the store
        report = sup.stop()  # the cycle's end waits for the renewer at most one ttl
        assert report.clean, report
        event = recorder.wait_for("lease.renewer_stuck", service="holds")
        assert event["waited"] == 0.6
        again = FileLeaseBackend().acquire(str(tmp_path / "job.lock"), 1.0)
        assert again is not None  # released, not held until the renewal comes back
        backend.release(again)
    finally:
        backend.let_go.set()
