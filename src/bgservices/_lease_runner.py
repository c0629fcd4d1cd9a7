"""Holding a service's lease: STANDBY until acquired, renewal in the background, step-down.

``Service._live`` calls ``hold()`` before each setup/run/teardown cycle and ``end_cycle()``
after it; everything else about leases lives here. A lease is held for one cycle: a crash
gives it up, so that a healthy instance elsewhere can take over during the backoff.

Renewal runs in a thread of its own every ``ttl / 3``. A renewal that finds the lease taken
steps down at once; one that cannot reach the store is retried until the renew deadline
(``2/3 ttl`` after the last successful renewal began) and then steps down: ``run()`` is asked to
stop (``self.stopping`` turns true, ``self.wait()`` returns) with the lease's TTL still
ahead, and the service goes back to STANDBY, not to STOPPED.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .leases._make import backend_for
from .leases._spec import HeldLease, LeaseBackend
from .state import ServiceState

if TYPE_CHECKING:
    from .leases._option import Lease
    from .service import Service

__all__ = ["LeaseRunner"]

_S = ServiceState


class LeaseRunner:
    """The lease of one service, for one launch."""

    def __init__(self, service: Service, lease: Lease) -> None:
        self._service = service
        self._lease = lease
        self._backend: LeaseBackend | None = None
        self._pid: int | None = None
        #: The current hold; set and cleared only by the service thread.
        self.current: HeldLease | None = None
        self._wake = threading.Condition(threading.Lock())  # guards _ending; wakes the renewer
        self._ending = False
        self._renewer: threading.Thread | None = None
        self._held_since: float | None = None  # monotonic
        self._reachable = True
        self._step_down_reason: str | None = None
        self.acquisitions = 0
        self.failovers = 0  # acquisitions after waiting in STANDBY: takeovers
        self.step_downs = 0
        self.renewals = 0

    @property
    def key(self) -> str:
        lease = self._lease
        if lease.key:
            return lease.key
        return lease.path or f"bgservices:lease:{self._service.name}"

    # -- in the service thread ---------------------------------------------------------

    def hold(self) -> bool:
        """Wait in STANDBY until the lease is held (True), or a stop is requested (False)."""
        service, lease = self._service, self._lease
        waited = False
        uniform = _uniform(service._clock)
        if service.state is _S.RUNNING:  # it stepped down: no longer running, whatever follows
            waited = True
            if not service._transition(
                _S.STANDBY, "lease.standby", "info", unless_stopping=True, key=self.key
            ):
                return False
        while True:
            if service._stop_requested:
                return False
            held = self._try_acquire()
            if held is not None:
                break
            if not waited:
                waited = True
                if service.state is not _S.STANDBY and not service._transition(
                    _S.STANDBY, "lease.standby", "info", unless_stopping=True, key=self.key
                ):
                    return False
                service._setup_done()  # a standby counts as started
            if service.wait(lease.retry_every * uniform(0.5, 1.0)):
                return False
        held.acquired_at = held.last_renewed = service._clock.time()  # one clock for both
        self.current = held
        self._held_since = service._clock.monotonic()
        self.acquisitions += 1
        self.failovers += waited
        fields: dict[str, Any] = {"key": self.key, "token": held.token, "takeover": waited}
        if service.state is _S.STANDBY:
            if not service._transition(
                _S.STARTING, "lease.acquired", "info", unless_stopping=True, **fields
            ):
                self._give_up()
                return False
        else:
            service._emit("lease.acquired", "info", **fields)
        self._start_renewer(held)
        return True

    def end_cycle(self) -> bool:
        """Stop renewing and give the lease up; True if the service stepped down and should
        wait in STANDBY again (False when a stop was requested meanwhile)."""
        with self._wake:
            self._ending = True
            self._wake.notify_all()
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.join(self._lease.ttl)  # past it the lease has expired anyway
            if renewer.is_alive():  # stuck in a call to the store: give the lease up all the same
                self._service._emit(
                    "lease.renewer_stuck", "warning", key=self.key, waited=self._lease.ttl
                )
        self._give_up()
        service = self._service
        with service._cond:
            stepped_down = service._stepping_down
            service._stepping_down = False
        return stepped_down and not service._stop_requested

    def close(self) -> None:
        """The launch is over: close the store's connection."""
        backend, self._backend = self._backend, None
        if backend is not None:
            self._safely(backend.close, "close")

    def forget(self) -> None:
        """Drop a hold inherited over ``fork()`` without releasing it: in the child, closing
        its own copy of a lock file's descriptor is all that keeps the parent's lock whole."""
        held, self.current = self.current, None
        if held is not None and isinstance(held.handle, int):
            with contextlib.suppress(OSError):
                os.close(held.handle)
        self._backend = None

    def _try_acquire(self) -> HeldLease | None:
        backend = self._get_backend()
        try:
            held = backend.acquire(self.key, self._lease.ttl)
        except Exception as exc:
            self._unreachable(exc, "acquire")
            return None
        self._reached()
        return held

    def _give_up(self) -> None:
        held, self.current = self.current, None
        self._held_since = None
        if held is None:
            return
        backend = self._get_backend()
        if self._safely(lambda: backend.release(held), "release"):
            self._service._emit("lease.released", "debug", key=self.key, token=held.token)

    def _get_backend(self) -> LeaseBackend:
        if self._backend is None:
            self._backend = backend_for(self._lease)
        return self._backend

    # -- the renewer thread ------------------------------------------------------------

    def _start_renewer(self, held: HeldLease) -> None:
        self._ending = False
        thread = self._renewer = threading.Thread(
            target=self._renew_loop,
            args=(held, self._service._clock.monotonic()),
            name=f"bgservices:{self._service.name}:lease",
            daemon=True,
        )
        thread.start()

    def _renew_loop(self, held: HeldLease, began: float) -> None:
        lease, clock, backend = self._lease, self._service._clock, self._get_backend()
        deadline = began + lease.renew_deadline
        next_at = began + lease.renew_every
        failing = False
        while True:
            wake_at = min(next_at, deadline) if failing else next_at
            with self._wake:
                if clock.wait_for(
                    self._wake, lambda: self._ending, max(0.0, wake_at - clock.monotonic())
                ):
                    return
            if failing and clock.monotonic() >= deadline:
                self._step_down("renew deadline passed", held)
                return
            sent = clock.monotonic()
            owned: bool | Exception
            try:
                owned = backend.renew(held, lease.ttl)
            except Exception as exc:
                owned = exc
            if self._ending:  # the cycle ended meanwhile (it may have given up waiting for us)
                return
            if isinstance(owned, Exception):
                self._unreachable(owned, "renew")
                failing = True
                next_at = clock.monotonic() + lease.renew_every / 4
                continue
            self._reached()
            if not owned:
                self._step_down("lease lost", held)
                return
            failing = False
            held.last_renewed = clock.time()
            self.renewals += 1
            deadline = sent + lease.renew_deadline
            next_at = sent + lease.renew_every

    def _step_down(self, reason: str, held: HeldLease) -> None:
        """Ask run() to stop without stopping the service: it goes back to STANDBY."""
        self.step_downs += 1
        self._step_down_reason = reason
        self._service._emit("lease.lost", "warning", key=self.key, token=held.token, reason=reason)
        self._service._request_step_down()

    # -- reporting ----------------------------------------------------------------------

    def _unreachable(self, exc: Exception, what: str) -> None:
        if self._reachable:
            self._reachable = False
            self._service._emit("lease.unreachable", "warning", exc=exc, action=what)

    def _reached(self) -> None:
        if not self._reachable:
            self._reachable = True
            self._service._emit("lease.reachable", "info")

    def _safely(self, call: Any, what: str) -> bool:
        try:
            call()
        except Exception as exc:
            self._service._emit("lease.error", "warning", exc=exc, action=what)
            return False
        return True

    def status(self) -> dict[str, Any]:
        """The lease as ``status()`` shows it."""
        held, since = self.current, self._held_since
        service = self._service
        role = "standby"
        if held is not None:
            role = "stepping_down" if service._stepping_down else "holder"
        return {
            "key": self.key,
            "role": role,
            "token": held.token if held else None,
            "held_for": (
                round(service._clock.monotonic() - since, 3) if since is not None else None
            ),
            "acquired_at": _iso(held.acquired_at) if held else None,
            "last_renewed": _iso(held.last_renewed) if held else None,
            "reachable": self._reachable,
            "acquisitions": self.acquisitions,
            "failovers": self.failovers,
            "step_downs": self.step_downs,
            "last_step_down": self._step_down_reason,
        }


def _uniform(clock: Any) -> Any:
    """Where jitter is drawn from: the clock's ``random`` (a test's clock fixes the draws)."""
    chance = getattr(clock, "random", None)
    return random.uniform if chance is None else chance.uniform


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def runner_for(service: Service, old: LeaseRunner | None) -> LeaseRunner:
    """A fresh runner for a launch of *service*. After a fork the old one may still hold the
    parent's lease: it is forgotten here without being released (the parent holds it)."""
    if old is not None:
        old.forget()
    lease = service.lease
    assert lease is not None
    owner = getattr(lease, "_runner", None)
    if owner is not None and owner._service is not service:  # one Lease given to two services
        lease = service.lease = copy.copy(lease)
    runner = LeaseRunner(service, lease)
    lease._runner = runner  # type: ignore[attr-defined]  # the live view: self.lease.token
    return runner
