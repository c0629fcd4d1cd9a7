"""Prometheus metrics of a supervisor's services (needs ``prometheus_client``: the
``metrics`` extra).

``SupervisorCollector`` reads figures the services keep anyway, at scrape time; it is
registered on a registry of its own per supervisor (``registry_for``), never on the global
default, so that embedding bgservices never adds metrics to an application's own registry
unless asked: ``my_registry.register(SupervisorCollector(supervisor))``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..health import Verdict
from ..periodic import TICK_BUCKETS, PeriodicService
from ..services import CacheWarmer, Health, KeepAlive, LogCollector, MemoryMonitor
from ..state import ServiceState

if TYPE_CHECKING:
    from ..service import Service
    from ..supervisor import Supervisor

__all__ = ["SupervisorCollector", "registry_for", "render"]

_MIB = 1024 * 1024
_registries: weakref.WeakKeyDictionary[Supervisor, CollectorRegistry] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def registry_for(supervisor: Supervisor) -> CollectorRegistry:
    """The registry holding *supervisor*'s collector (made on first use, one per supervisor)."""
    with _lock:
        registry = _registries.get(supervisor)
        if registry is None:
            registry = _registries[supervisor] = CollectorRegistry(auto_describe=False)
            registry.register(SupervisorCollector(supervisor))
        return registry


def render(supervisor: Supervisor) -> tuple[bytes, str]:
    """The text exposition of *supervisor*'s metrics and its content type."""
    return generate_latest(registry_for(supervisor)), CONTENT_TYPE_LATEST


class SupervisorCollector:
    """A custom collector: every figure is read when scraped, nothing is kept twice."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = weakref.ref(supervisor)

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration: the figures are only read when scraped

    def collect(self) -> Iterator[Metric]:
        supervisor = self._supervisor()
        if supervisor is None:
            return
        report = supervisor.health()
        families = _Families()
        families.healthy.add_metric([], 1.0 if report["healthy"] else 0.0)
        for service in supervisor:
            health = report["services"].get(service.name)
            if health is not None:
                families.add_service(service, health)
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        s = ["service"]
        self.healthy = GaugeMetricFamily(
            "bgservices_healthy", "1 while running with no critical service failing."
        )
        self.state = GaugeMetricFamily(
            "bgservices_service_state", "1 for the state the service is in.", labels=[*s, "state"]
        )
        self.health = GaugeMetricFamily(
            "bgservices_service_health",
            "1 for the service's health verdict.",
            labels=[*s, "health"],
        )
        self.ready = GaugeMetricFamily("bgservices_service_ready", "1 when ready.", labels=s)
        self.restarts = CounterMetricFamily(
            "bgservices_service_restarts", "Restarts since the launch.", labels=s
        )
        self.crashes = CounterMetricFamily(
            "bgservices_service_crashes", "Crashes of setup() or run().", labels=s
        )
        self.heartbeat_age = GaugeMetricFamily(
            "bgservices_service_heartbeat_age_seconds", "Seconds since the last progress.", labels=s
        )
        self.ticks = CounterMetricFamily("bgservices_service_ticks", "Ticks run.", labels=s)
        self.tick_errors = CounterMetricFamily(
            "bgservices_service_tick_errors", "Ticks that raised.", labels=s
        )
        self.tick_duration = HistogramMetricFamily(
            "bgservices_service_tick_duration_seconds", "How long ticks took.", labels=s
        )
        self.tick_lateness = GaugeMetricFamily(
            "bgservices_service_tick_lateness_seconds",
            "How late the last tick began after its scheduled time.",
            labels=s,
        )
        self.last_success = GaugeMetricFamily(
            "bgservices_service_last_success_timestamp_seconds",
            "Unix time of the last successful tick.",
            labels=s,
        )
        self.cache_entries = GaugeMetricFamily(
            "bgservices_cache_entries", "Keys stored by the last warm-up.", labels=s
        )
        self.cache_age = GaugeMetricFamily(
            "bgservices_cache_data_age_seconds", "Seconds since the last warm-up.", labels=s
        )
        self.cache_failures = CounterMetricFamily(
            "bgservices_cache_refresh_failures", "Keys that failed to refresh.", labels=s
        )
        self.keepalive_up = GaugeMetricFamily(
            "bgservices_keepalive_up", "1 while the target is up.", labels=s
        )
        self.keepalive_latency = GaugeMetricFamily(
            "bgservices_keepalive_probe_latency_seconds", "Latency of the last ping.", labels=s
        )
        self.memory_rss = GaugeMetricFamily(
            "bgservices_memory_rss_bytes", "Resident set size, last sample.", labels=s
        )
        self.memory_limit = GaugeMetricFamily(
            "bgservices_memory_limit_bytes", "The RSS limit (rss_limit_mb, else cgroup).", labels=s
        )
        self.log_written = CounterMetricFamily(
            "bgservices_log_records_written", "Log records written.", labels=s
        )
        self.log_dropped = CounterMetricFamily(
            "bgservices_log_records_dropped", "Log records dropped (queue full).", labels=s
        )

    def all(self) -> list[Metric]:
        return [v for v in vars(self).values() if isinstance(v, Metric)]

    def add_service(self, service: Service, health: dict[str, Any]) -> None:
        name = [service.name]
        for state in ServiceState:
            self.state.add_metric([*name, state.value], 1.0 if service.state is state else 0.0)
        for verdict in Verdict:
            self.health.add_metric([*name, verdict.value], float(health["health"] == verdict))
        self.ready.add_metric(name, 1.0 if health["ready"] else 0.0)
        self.restarts.add_metric(name, service.restarts)
        self.crashes.add_metric(name, service.crashes)
        if health["heartbeat_age"] is not None:
            self.heartbeat_age.add_metric(name, health["heartbeat_age"])
        if isinstance(service, PeriodicService):
            self._periodic(service, name)
        self._builtin(service, name)

    def _periodic(self, service: PeriodicService, name: list[str]) -> None:
        self.ticks.add_metric(name, service.ticks)
        self.tick_errors.add_metric(name, service.errors)
        cumulative, buckets = 0, []
        for bound, count in zip((*TICK_BUCKETS, float("inf")), service._duration_counts,
                                strict=True):  # fmt: skip
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        self.tick_duration.add_metric(name, buckets, service._duration_sum)
        if service._lateness is not None:
            self.tick_lateness.add_metric(name, service._lateness)
        if service._succeeded_at is not None:
            self.last_success.add_metric(name, service._succeeded_at)

    def _builtin(self, service: Service, name: list[str]) -> None:
        """The built-ins' own figures, by class: a subclass registered under another type
        name is still a ``CacheWarmer`` (``register`` sets its ``type_name``)."""
        if isinstance(service, CacheWarmer):
            self._cache(service, name)
        elif isinstance(service, KeepAlive):
            self._keepalive(service, name)
        elif isinstance(service, MemoryMonitor):
            self._memory(service, name)
        elif isinstance(service, LogCollector):
            self.log_written.add_metric(name, service.written)
            self.log_dropped.add_metric(name, service.dropped)

    def _cache(self, service: CacheWarmer, name: list[str]) -> None:
        self.cache_entries.add_metric(name, service.keys_warmed)
        self.cache_failures.add_metric(name, service.total_failures)
        if service.last_success_at is not None:
            self.cache_age.add_metric(name, max(0.0, time.time() - service.last_success_at))

    def _keepalive(self, service: KeepAlive, name: list[str]) -> None:
        self.keepalive_up.add_metric(name, 1.0 if service.health is Health.UP else 0.0)
        latencies = service._latencies  # one per successful ping, the last one last
        if latencies:
            self.keepalive_latency.add_metric(name, latencies[-1])

    def _memory(self, service: MemoryMonitor, name: list[str]) -> None:
        latest = service.latest()
        if latest is not None:
            self.memory_rss.add_metric(name, latest.rss)
        limit = service.rss_limit_mb * _MIB if service.rss_limit_mb else None
        if limit is None and latest is not None:
            limit = latest.cgroup_limit
        if limit:
            self.memory_limit.add_metric(name, limit)
