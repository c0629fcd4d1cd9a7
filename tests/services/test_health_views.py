"""The built-ins' own views of their health (``check_health``) and their readiness."""

from __future__ import annotations

import logging
import threading
from typing import Any

from bgservices import ServiceState
from bgservices.health import Verdict
from bgservices.services import CacheWarmer, KeepAlive, LogCollector, MemoryMonitor


def test_keep_alive_is_ready_after_its_first_up_and_failing_while_down(
    make_supervisor, recorder, http_server
) -> None:
    http_server.status = 500
    ping = KeepAlive(name="ping", url=http_server.url, interval=0.02, failure_threshold=2)
    sup = make_supervisor(ping)
    sup.start()
    recorder.wait_for("keepalive.down", service="ping")
    report = ping.health_report()
    assert report.verdict is Verdict.FAILING and "is down" in report.reasons[0]
    assert not report.ready and not sup.ready  # never UP yet
    assert sup.healthy  # daemon-safe: reported, not fatal
    http_server.status = 200
    recorder.wait_for("keepalive.up", service="ping")
    assert sup.wait_ready(5)
    assert ping.health_report().verdict is Verdict.OK


def test_cache_warmer_is_ready_after_its_first_load_and_degraded_when_stale(
    make_supervisor, recorder
) -> None:
    calls = 0
    first = threading.Event()

    def loader() -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            first.wait(10)
            return {"a": 1}
        raise ConnectionError("database gone")

    warmer = CacheWarmer(name="warm", interval=0.05, ttl=0.1, loader=loader)
    sup = make_supervisor(warmer)
    sup.start()
    assert warmer.state is ServiceState.RUNNING and not warmer.ready and not sup.ready
    first.set()
    assert sup.wait_ready(5)
    event = recorder.wait_for(
        "service.health", service="warm",
        where=lambda e: any("old (ttl" in r for r in e["reasons"]),
        timeout=10,
    )  # fmt: skip
    assert event["health"] in ("degraded", "failing")  # failing once ticks fail thrice


def test_memory_monitor_in_breach_is_degraded(make_supervisor, recorder) -> None:
    monitor = MemoryMonitor(name="mem", interval=0.02, rss_limit_mb=1)
    sup = make_supervisor(monitor)
    sup.start()
    recorder.wait_for("memory.breach", service="mem")
    report = monitor.health_report()
    assert report.verdict is Verdict.DEGRADED and "breached" in report.reasons[0]


def test_log_collector_dropping_records_is_degraded(make_supervisor, tmp_path) -> None:
    release = threading.Event()
    collector = LogCollector(name="logs", loggers=["test.health.views"], max_queue=2,
                             on_full="drop", path=str(tmp_path / "app.log"))  # fmt: skip
    sup = make_supervisor(collector)
    original = collector._write

    def slow_write(batch: list[Any]) -> bool:
        release.wait(10)
        return original(batch)

    collector._write = slow_write  # type: ignore[method-assign]
    sup.start()
    log = logging.getLogger("test.health.views")
    log.setLevel(logging.INFO)
    for i in range(20):
        log.info("record %d", i)
    report = collector.health_report()
    assert report.verdict is Verdict.DEGRADED
    assert any("dropping records" in r for r in report.reasons)
    release.set()
