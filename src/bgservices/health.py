"""Health verdicts: whether a service is doing its work, not only whether its thread is alive.

A service's health is judged lazily, from figures the service keeps anyway (its state, when it
last showed progress, its errors in a row, when its current tick began) plus its own view
(``Service.check_health()``). Nothing here polls: ``deadline()`` says when time alone could
change a verdict, so one watchdog thread per supervisor can sleep until then.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._saferepr import safe_repr
from .state import ServiceState

if TYPE_CHECKING:
    from .service import Service

__all__ = [
    "HealthCheck",
    "ServiceHealth",
    "Verdict",
    "deadline",
    "evaluate",
    "up_and_ready",
    "worst",
]


class Verdict(enum.StrEnum):
    """How well a service does its work, from best to worst."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Verdict.OK: 0, Verdict.DEGRADED: 1, Verdict.FAILING: 2}


def worst(*verdicts: Verdict) -> Verdict:
    """The worst of *verdicts* (OK for none)."""
    return max(verdicts, key=_RANK.__getitem__, default=Verdict.OK)


@dataclass(frozen=True)
class HealthCheck:
    """A verdict with the reasons for it: what ``check_health()`` returns."""

    verdict: Verdict = Verdict.OK
    reasons: tuple[str, ...] = ()

    @classmethod
    def ok(cls) -> HealthCheck:
        return cls()

    @classmethod
    def degraded(cls, *reasons: str) -> HealthCheck:
        return cls(Verdict.DEGRADED, reasons)

    @classmethod
    def failing(cls, *reasons: str) -> HealthCheck:
        return cls(Verdict.FAILING, reasons)


@dataclass(frozen=True)
class ServiceHealth:
    """One service's health, as ``Supervisor.health()`` reports it.

    *stalled* and *overrun* say that no heartbeat came within ``stall_after``, or that the
    current tick runs past ``tick_timeout``: the watchdog reports each once with the stack.
    *overrun_since* is when that tick began (monotonic): which overrun it is.
    """

    name: str
    verdict: Verdict
    reasons: tuple[str, ...]
    ready: bool
    critical: bool
    state: ServiceState
    heartbeat_age: float | None = None
    stalled: bool = False
    overrun: bool = False
    overrun_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "health": self.verdict.value,
            "reasons": list(self.reasons),
            "ready": self.ready,
            "critical": self.critical,
            "state": self.state.value,
            "heartbeat_age": None if self.heartbeat_age is None else round(self.heartbeat_age, 3),
        }


def evaluate(service: Service, *, own: bool = True) -> ServiceHealth:
    """Judge *service* now, from its state, progress, errors and its own ``check_health()``
    (not with *own* false: a judge that must run no code of the service's)."""
    now = service._clock.monotonic()
    state = service.state
    running = state is ServiceState.RUNNING
    found = _state_findings(service)
    beat = service._heartbeat_at
    age = None if beat is None else max(0.0, now - beat)
    stall = service.stall_after
    stalled = running and stall is not None and age is not None and age >= stall
    if stalled:
        found.append((Verdict.FAILING, f"no progress for {age:.1f}s (stall_after={stall:g}s)"))
    overrun_since = None
    if running:
        for verdict, reason, since in service._progress_health(now):
            found.append((verdict, reason))
            overrun_since = since if since is not None else overrun_since
    if own and (running or state is ServiceState.STANDBY):  # a follower has a view too
        found += _own_findings(service)
    return ServiceHealth(
        name=service.name,
        verdict=worst(*(verdict for verdict, _ in found)),
        reasons=tuple(reason for _, reason in found),
        ready=up_and_ready(service),
        critical=not service.daemon,
        state=state,
        heartbeat_age=age,
        stalled=stalled,
        overrun=overrun_since is not None,
        overrun_since=overrun_since,
    )


def _state_findings(service: Service) -> list[tuple[Verdict, str]]:
    """FAILED is failing; BACKOFF (restarting after a crash) is degraded."""
    if service.state is ServiceState.FAILED:
        error = service.last_error
        return [(Verdict.FAILING, "failed" + (f": {error['message']}" if error else ""))]
    if service.state is ServiceState.BACKOFF:
        return [(Verdict.DEGRADED, f"restarting after a crash (restarts: {service.restarts})")]
    runner = getattr(service, "_lease_runner", None) if service.lease is not None else None
    if runner is not None and not runner._reachable:
        return [(Verdict.DEGRADED, "lease store unreachable: cannot acquire or renew")]
    return []


def _own_findings(service: Service) -> list[tuple[Verdict, str]]:
    """What the service's own ``check_health()`` says, if anything but a bare OK."""
    own = _own_view(service)
    if own.verdict is Verdict.OK and not own.reasons:
        return []
    reasons = own.reasons or (f"check_health: {own.verdict.value}",)
    return [(own.verdict, reason) for reason in reasons]


def deadline(service: Service) -> float | None:
    """The earliest monotonic time at which time alone could change *service*'s verdict."""
    if service.state is not ServiceState.RUNNING:
        return None
    times = []
    beat, stall = service._heartbeat_at, service.stall_after
    if beat is not None and stall is not None:
        times.append(beat + stall)
    tick_deadline = service._progress_deadline()
    if tick_deadline is not None:
        times.append(tick_deadline)
    return min(times, default=None)


def _own_view(service: Service) -> HealthCheck:
    try:
        result = service.check_health()
    except Exception as exc:
        return HealthCheck.degraded(f"check_health() raised {safe_repr(exc)}")
    if result is None:
        return HealthCheck()
    if not isinstance(result, HealthCheck):
        return HealthCheck.degraded(f"check_health() returned {type(result).__name__}")
    return result


def up_and_ready(service: Service) -> bool:
    """RUNNING and ``ready``, or in STANDBY: a standby (its lease held by another instance)
    is ready, as it does its part by waiting."""
    state = service.state
    return state is ServiceState.STANDBY or (state is ServiceState.RUNNING and _ready(service))


def _ready(service: Service) -> bool:
    try:
        return bool(service.ready)
    except Exception:
        return False
