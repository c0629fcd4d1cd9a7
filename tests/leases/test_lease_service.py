"""A leased service in one process: STANDBY, takeover, step-down, status and options."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bgservices import ConfigError, PeriodicService, Service, ServiceState, Supervisor
from bgservices.config import from_config
from bgservices.leases import Lease

from .._process import until
from ..conftest import Recorder
from ._redis_server import RedisServer

MakeSupervisor = Callable[..., Supervisor]


class Worker(Service):
    """Runs until stopped; records the fencing token of every run."""

    def init_state(self) -> None:
        super().init_state()
        self.tokens: list[int | None] = []
        self.hooks = 0
        self.release_run = threading.Event()
        self.release_run.set()
        self.saw_stopping = threading.Event()
        self.in_run = threading.Event()  # set once run() noted its token (after RUNNING)

    def run(self) -> None:
        assert self.lease is not None
        self.tokens.append(self.lease.token)
        self.in_run.set()
        while not self.wait(1.0):
            pass
        self.saw_stopping.set()
        self.release_run.wait(10)

    def on_stop_requested(self) -> None:
        self.hooks += 1


def test_one_holder_runs_the_other_waits_in_standby_and_takes_over_on_stop(
    make_supervisor: MakeSupervisor, recorder: Recorder, tmp_path: Path
) -> None:
    lease = {"path": str(tmp_path / "job.lock"), "retry_interval": 1.0}
    holder, follower = Worker(name="a", lease=lease), Worker(name="b", lease=lease)
    first, second = make_supervisor(holder), make_supervisor(follower)
    first.start()
    assert holder.in_run.wait(5)
    second.start()  # returns: a standby counts as started
    assert follower.state is ServiceState.STANDBY
    assert second.wait_running(timeout=5) and second.healthy  # STANDBY is up
    status = follower.status()["lease"]
    assert status["role"] == "standby" and status["token"] is None
    assert holder.status()["lease"]["role"] == "holder"
    assert holder.lease is not None and holder.lease.token == holder.tokens[0]

    began = time.monotonic()
    first.stop()  # releases the lease at once
    stopped = time.monotonic() - began
    assert follower.in_run.wait(5)
    released = recorder.wait_for("lease.released", service="a")["timestamp"]
    took = recorder.wait_for("lease.acquired", service="b")["timestamp"] - released
    print(f"clean stop {stopped:.3f}s, then takeover {took:.3f}s later (retry interval 1.0s)")
    assert 0 < took < 1.0 + 0.25  # one retry interval, and scheduling slack
    assert follower.tokens[0] is not None and holder.tokens[0] is not None
    assert follower.tokens[0] > holder.tokens[0]
    assert follower.status()["lease"]["failovers"] == 1
    assert holder.lease.token is None  # released


def test_a_lost_lease_steps_down_to_standby_and_is_taken_again(
    make_supervisor: MakeSupervisor, recorder: Recorder, tmp_path: Path
) -> None:
    path = tmp_path / "job.lock"
    worker = Worker(name="w", lease={"path": str(path), "ttl": 0.3})
    make_supervisor(worker).start()
    assert worker.wait_for_state(ServiceState.RUNNING, timeout=5)
    path.unlink()  # the renewer sees the lock file is no longer the one it locked
    lost = recorder.wait_for("lease.lost", service="w")
    assert lost["reason"] == "lease lost"
    recorder.wait_for("lease.acquired", where=lambda e: len(worker.tokens) == 2)
    assert worker.wait_for_state(ServiceState.RUNNING, timeout=5)
    assert worker.tokens[1] is not None and worker.tokens[0] is not None
    assert worker.tokens[1] > worker.tokens[0]
    assert worker.hooks == 1  # on_stop_requested ran for the step-down
    names = recorder.names("w")
    assert "service.stopped" not in names
    assert "lease.standby" in names  # it stepped down to STANDBY before taking the lease again
    status = worker.status()["lease"]
    assert status["step_downs"] == 1 and status["last_step_down"] == "lease lost"


def test_a_stop_during_a_step_down_stops_the_service(
    make_supervisor: MakeSupervisor, recorder: Recorder, tmp_path: Path
) -> None:
    path = tmp_path / "job.lock"
    worker = Worker(name="w", lease={"path": str(path), "ttl": 0.3})
    sup = make_supervisor(worker)
    sup.start()
    assert worker.wait_for_state(ServiceState.RUNNING, timeout=5)
    worker.release_run.clear()  # run() will linger after it sees the step-down
    path.unlink()
    assert worker.saw_stopping.wait(5)
    sup.request_stop()
    worker.release_run.set()
    assert sup.wait_stopped(timeout=10)
    assert worker.state is ServiceState.STOPPED
    assert "lease.standby" not in recorder.names("w")


def test_a_stop_in_standby_stops_at_once(make_supervisor: MakeSupervisor, tmp_path: Path) -> None:
    lease = {"path": str(tmp_path / "job.lock"), "retry_interval": 30.0}
    holder, follower = Worker(name="a", lease=lease), Worker(name="b", lease=lease)
    make_supervisor(holder).start()
    assert holder.wait_for_state(ServiceState.RUNNING, timeout=5)
    second = make_supervisor(follower)
    second.start()
    assert follower.state is ServiceState.STANDBY
    began = time.monotonic()
    second.stop()
    assert follower.state is ServiceState.STOPPED and follower.hooks == 0
    assert time.monotonic() - began < 5  # not the 30 s retry interval


def test_a_periodic_service_ticks_only_while_it_holds_the_lease(
    make_supervisor: MakeSupervisor, tmp_path: Path
) -> None:
    ticks: list[tuple[str, int | None]] = []
    lock = threading.Lock()

    class Ticker(PeriodicService):
        interval = 0.01

        def tick(self) -> None:
            with lock:
                ticks.append((self.name, self.lease.token if self.lease else None))

    lease = {"path": str(tmp_path / "tick.lock"), "retry_interval": 0.2}
    one, two = Ticker(name="one", lease=lease), Ticker(name="two", lease=lease)
    first = make_supervisor(one)
    first.start()
    make_supervisor(two).start()
    assert until(lambda: len(ticks) >= 5)
    first.stop()
    assert two.wait_for_state(ServiceState.RUNNING, timeout=5)
    seen = len(ticks)
    assert until(lambda: len(ticks) >= seen + 5)
    with lock:
        names = [name for name, _ in ticks]
        tokens = [token for _, token in ticks]
    switch = names.index("two")
    assert set(names[:switch]) == {"one"} and set(names[switch:]) == {"two"}
    assert all(t is not None for t in tokens) and tokens == sorted(tokens)  # type: ignore[type-var]


def test_the_lease_option_is_validated_in_code_and_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lease: give exactly one of url"):
        Worker(lease={"ttl": 1})
    with pytest.raises(ConfigError, match="lease: url must start with"):
        Worker(lease={"url": "http://127.0.0.1:6379"})
    with pytest.raises(ConfigError, match="lease: ttl must be > 0"):
        Worker(lease={"path": str(tmp_path / "x"), "ttl": 0})
    with pytest.raises(ConfigError, match="lease: must be Lease"):
        Worker(lease={"path": str(tmp_path / "x"), "tll": 15})  # a typo is refused, not ignored
    with pytest.raises(ConfigError, match=r"lease\.ttl"):
        Worker(lease={"path": str(tmp_path / "x"), "ttl": "15"})
    config = {
        "services": {
            "w": {
                "type": "tests.leases.test_lease_service:Worker",
                "lease": {"url": "redis://127.0.0.1:6379/0", "key": "k", "ttl": 2},
            }
        }
    }
    sup = from_config(config)
    (worker,) = list(sup)
    assert worker.lease == Lease(url="redis://127.0.0.1:6379/0", key="k", ttl=2.0)
    config["services"]["w"]["lease"] = {"path": 1}
    with pytest.raises(ConfigError, match=r"services\.w\.lease\.path"):
        from_config(config)


def test_one_lease_object_given_to_two_services_gives_each_its_own_view(
    make_supervisor: MakeSupervisor, tmp_path: Path
) -> None:
    lease = Lease(path=str(tmp_path / "job.lock"), retry_interval=5.0)
    one, two = Worker(name="one", lease=lease), Worker(name="two", lease=lease)
    make_supervisor(one, two).start()
    assert one.state is ServiceState.RUNNING and two.state is ServiceState.STANDBY
    assert one.lease is not None and two.lease is not None
    assert one.lease.held and not two.lease.held


def test_redis_killed_the_holder_steps_down_then_one_holds_again(
    make_supervisor: MakeSupervisor, recorder: Recorder, redis_server: RedisServer
) -> None:
    ttl = 1.0
    lease = {"url": redis_server.url, "key": "job", "ttl": ttl, "retry_interval": 0.2}
    workers = [Worker(name=f"w{i}", lease=lease) for i in range(2)]
    sups = {worker.name: make_supervisor(worker).start() for worker in workers}
    holder = next(w for w in workers if w.state is ServiceState.RUNNING)
    assert sum(w.state is ServiceState.STANDBY for w in workers) == 1
    held = holder.lease
    assert held is not None
    acquired = held.last_renewed
    assert until(lambda: held.last_renewed != acquired)  # a renewal went through
    redis_server.kill()  # at once: the next renewal is ttl / 3 away
    renewed = held.last_renewed  # the last one: none can succeed from here
    assert renewed is not None
    assert holder.wait_for_state(ServiceState.STANDBY, timeout=5)
    lost = recorder.wait_for("lease.lost", service=holder.name)
    print(f"stepped down {lost['timestamp'] - renewed:.3f}s after its last renewal (ttl {ttl}s)")
    assert lost["reason"] == "renew deadline passed"
    # Wall-clock seconds, both: the lease it held cannot have expired before it stepped down.
    assert lost["timestamp"] < renewed + ttl
    assert all(w.state is ServiceState.STANDBY for w in workers)
    assert holder.status()["lease"]["reachable"] is False
    health = sups[holder.name].health()["services"][holder.name]
    assert health["health"] == "degraded" and "lease store unreachable" in health["reasons"][0]
    redis_server.start()
    assert until(lambda: any(w.lease is not None and w.lease.held for w in workers))
    time.sleep(0.3)  # a few retry intervals: a second holder would show by now
    states = sorted(w.state.value for w in workers)
    assert states == ["running", "standby"], states
    assert sum(bool(w.lease and w.lease.held) for w in workers) == 1
    assert os.environ.get("BGSERVICES_STRICT") == "1"


def test_a_crash_gives_the_lease_up_so_another_takes_over_during_the_backoff(
    make_supervisor: MakeSupervisor, recorder: Recorder, tmp_path: Path
) -> None:
    class Crasher(Service):
        def run(self) -> None:
            raise RuntimeError("crashed while holding the lease")

    lease = {"path": str(tmp_path / "job.lock"), "retry_interval": 0.2}
    crasher = Crasher(name="crasher", lease=lease, max_restarts=100)
    make_supervisor(crasher).start()
    recorder.wait_for("service.crashed", service="crasher")
    standby = Worker(name="standby", lease=lease)
    make_supervisor(standby).start()
    assert standby.wait_for_state(ServiceState.RUNNING, timeout=10)  # during the backoff
    assert crasher.state in (ServiceState.BACKOFF, ServiceState.STANDBY)
    assert crasher.wait_for_state(ServiceState.STANDBY, timeout=10)  # after it, it waits
    assert crasher.lease is not None and not crasher.lease.held
