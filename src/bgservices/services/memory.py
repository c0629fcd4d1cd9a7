"""``MemoryMonitor``: samples this process's memory and warns, once per episode, on a breach."""

from __future__ import annotations

import collections
import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..options import option
from ..periodic import PeriodicService
from ._cgroup import CgroupMemory, find_cgroup_memory

if TYPE_CHECKING:
    import psutil

__all__ = ["MemoryMonitor", "MemorySample"]

_MB = 1024 * 1024


@dataclass(frozen=True)
class MemorySample:
    """One reading. Sizes in bytes; ``percent`` is what ``percent_limit`` is compared with."""

    time: float
    rss: int
    vms: int
    percent: float
    percent_of: str  # "cgroup" or "system"
    cpu_percent: float
    threads: int
    open_fds: int | None
    system_available: int
    cgroup_limit: int | None
    cgroup_usage: int | None
    uss: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MemoryMonitor(PeriodicService):
    """Samples RSS, VMS, CPU, threads, fds and available memory with psutil every ``interval``.

    Daemon-safe: it only reads figures and reports them; a sample cut off at exit loses
    nothing. Inside a container it measures against the cgroup's limit, not the host's memory.
    A breach (``rss_limit_mb`` or ``percent_limit`` exceeded for ``sustained`` samples in a row)
    is reported once; recovery once too, when every figure is below its limit less
    ``hysteresis``, so one episode never becomes a storm of events.
    """

    type_name = "memory_monitor"

    daemon_safe = True
    interval = 10.0

    uss: bool = option(default=False, help="Also measure USS (about 16x more expensive).")
    rss_limit_mb: float | None = option(default=None, gt=0, help="Breach above this RSS, in MiB.")
    percent_limit: float | None = option(
        default=None,
        gt=0,
        le=100,
        help="Breach above this % of the cgroup limit, else of system memory.",
    )
    sustained: int = option(default=1, ge=1, help="Consecutive breaching samples before a breach.")
    hysteresis: float = option(
        default=0.1, ge=0, lt=1, help="Recover only below limit * (1 - hysteresis)."
    )
    on_breach: Callable[[MemorySample], Any] | None = option(
        default=None, help="Called with the sample when a breach begins."
    )
    on_recover: Callable[[MemorySample], Any] | None = option(
        default=None, help="Called with the sample when a breach ends."
    )
    gc_on_breach: bool = option(default=False, help="Run gc.collect() when a breach begins.")
    tracemalloc_top: int = option(
        default=10,
        ge=0,
        help="On a breach, log the top N allocation sites if tracemalloc is tracing.",
    )
    history: int = option(
        default=360, ge=1, help="How many samples to keep for latest()/samples()."
    )

    def init_state(self) -> None:
        super().init_state()
        self._samples: collections.deque[MemorySample] = collections.deque(maxlen=self.history)
        self._process: psutil.Process | None = None
        self._cgroup: CgroupMemory | None = None
        self._streak = 0
        self.breached = False
        self.breaches = 0
        self.recoveries = 0

    def setup(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call always returns 0.0: prime it
        self._cgroup = find_cgroup_memory()

    def tick(self) -> None:
        sample = self.sample()
        self._samples.append(sample)
        self._evaluate(sample)

    def sample(self) -> MemorySample:
        """Take one reading now (in any thread)."""
        import psutil

        process = self._process or psutil.Process()
        with process.oneshot():
            info = process.memory_info()
            cpu = process.cpu_percent(None)
            threads = process.num_threads()
            fds = process.num_fds() if hasattr(process, "num_fds") else None
            uss = process.memory_full_info().uss if self.uss else None
            system_percent = process.memory_percent()
        limit, usage = self._cgroup.read() if self._cgroup else (None, None)
        if limit:
            percent, percent_of = 100.0 * (usage or 0) / limit, "cgroup"
        else:
            percent, percent_of = system_percent, "system"
        return MemorySample(
            time=time.time(),
            rss=info.rss,
            vms=info.vms,
            percent=round(percent, 3),
            percent_of=percent_of,
            cpu_percent=cpu,
            threads=threads,
            open_fds=fds,
            system_available=psutil.virtual_memory().available,
            cgroup_limit=limit,
            cgroup_usage=usage,
            uss=uss,
        )

    def latest(self) -> MemorySample | None:
        """The most recent sample, if any."""
        return self._samples[-1] if self._samples else None

    def samples(self) -> list[MemorySample]:
        """The kept history, oldest first."""
        return list(self._samples)

    def summary(self) -> str:
        """One line for status tables: the latest RSS and breaches."""
        latest = self.latest()
        rss = f"rss={latest.rss / 2**20:.1f}MiB " if latest else ""
        return f"{rss}breaches={self.breaches}"

    def stats(self) -> dict[str, Any]:
        latest = self.latest()
        return {
            **super().stats(),
            "breached": self.breached,
            "breaches": self.breaches,
            "recoveries": self.recoveries,
            "callback_errors": self.callback_errors,
            "latest": latest.as_dict() if latest else None,
        }

    def _over(self, sample: MemorySample, factor: float) -> bool:
        """Whether any configured figure exceeds its limit scaled by *factor*."""
        rss_limit = self.rss_limit_mb
        percent_limit = self.percent_limit
        return (rss_limit is not None and sample.rss > rss_limit * _MB * factor) or (
            percent_limit is not None and sample.percent > percent_limit * factor
        )

    def _evaluate(self, sample: MemorySample) -> None:
        if not self.breached:
            self._streak = self._streak + 1 if self._over(sample, 1.0) else 0
            if self._streak >= self.sustained:
                self._breach(sample)
        elif not self._over(sample, 1.0 - self.hysteresis):
            self.breached = False
            self._streak = 0
            self.recoveries += 1
            self._emit("memory.recovered", "info", rss_mb=round(sample.rss / _MB, 1))
            self.call_safely(self.on_recover, sample, what="on_recover")

    def _breach(self, sample: MemorySample) -> None:
        self.breached = True
        self.breaches += 1
        fields: dict[str, Any] = {
            "rss_mb": round(sample.rss / _MB, 1),
            "percent": sample.percent,
            "percent_of": sample.percent_of,
            "rss_limit_mb": self.rss_limit_mb,
            "percent_limit": self.percent_limit,
        }
        if self.tracemalloc_top and tracemalloc.is_tracing():
            top = tracemalloc.take_snapshot().statistics("lineno")[: self.tracemalloc_top]
            fields["top_allocations"] = [str(stat) for stat in top]
        self._emit("memory.breach", "warning", **fields)
        if self.gc_on_breach:
            self._emit("memory.gc", "info", collected=gc.collect())
        self.call_safely(self.on_breach, sample, what="on_breach")
