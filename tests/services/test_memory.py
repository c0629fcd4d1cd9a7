from __future__ import annotations

import json
import threading
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from bgservices import ConfigError, ServiceState
from bgservices.services import MemoryMonitor, MemorySample
from bgservices.services._cgroup import find_cgroup_memory

MB = 1024 * 1024


def sample(rss_mb: float = 100, percent: float = 10.0) -> MemorySample:
    return MemorySample(
        time=0.0, rss=int(rss_mb * MB), vms=0, percent=percent, percent_of="system",
        cpu_percent=0.0, threads=1, open_fds=3, system_available=0, cgroup_limit=None,
        cgroup_usage=None, uss=None,
    )  # fmt: skip


def test_a_real_sample_of_this_process() -> None:
    monitor = MemoryMonitor(uss=True)
    monitor.setup()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn CPU so the primed cpu_percent shows it
        pass
    s = monitor.sample()
    assert s.rss > 10 * MB and s.vms >= s.rss and s.threads >= 1
    assert s.cpu_percent > 0  # psutil's first call returns 0.0; setup primed it
    assert s.open_fds is not None and s.open_fds > 0
    assert s.uss is not None and 0 < s.uss <= s.rss
    assert s.system_available > 0 and 0 < s.percent < 100
    json.dumps(s.as_dict())


def test_uss_is_only_measured_when_asked() -> None:
    monitor = MemoryMonitor()
    monitor.setup()
    assert monitor.sample().uss is None


def test_one_breach_and_one_recovery_per_episode() -> None:
    monitor = MemoryMonitor(rss_limit_mb=200, sustained=2, hysteresis=0.1)
    events: list[str] = []
    monitor.on_breach = lambda s: events.append("breach")
    monitor.on_recover = lambda s: events.append("recover")
    for rss in [100, 250, 150, 250, 260, 300, 250, 190, 185, 179, 170, 250, 100]:
        monitor._evaluate(sample(rss))
    # 250 alone is not sustained; 250+260 breach; 190 and 185 are inside the hysteresis band
    # (above 180); 179 recovers; the last 250 is a single sample again.
    assert events == ["breach", "recover"]
    assert (monitor.breaches, monitor.recoveries, monitor.breached) == (1, 1, False)


def test_percent_limit_uses_the_sample_percent() -> None:
    monitor = MemoryMonitor(percent_limit=50)
    monitor._evaluate(replace(sample(), percent=51, percent_of="cgroup"))
    assert monitor.breached


def test_a_failing_callback_is_counted_and_the_service_goes_on(make_supervisor, recorder) -> None:
    def broken(_: MemorySample) -> None:
        raise RuntimeError("callback bug")

    monitor = MemoryMonitor(rss_limit_mb=1, interval=0.01, on_breach=broken)
    with make_supervisor(monitor):
        recorder.wait_for("service.callback_failed")
        assert monitor.state is ServiceState.RUNNING
    assert monitor.callback_errors == 1 and monitor.status()["callback_errors"] == 1


def test_breach_and_recovery_on_the_real_process(make_supervisor) -> None:
    probe = MemoryMonitor()
    probe.setup()
    baseline = probe.sample().rss / MB
    breached, recovered = threading.Event(), threading.Event()
    monitor = MemoryMonitor(
        interval=0.01,
        rss_limit_mb=baseline + 40,
        sustained=2,
        history=2,
        on_breach=lambda s: breached.set(),
        on_recover=lambda s: recovered.set(),
    )
    with make_supervisor(monitor):
        ballast = bytearray(b"\x01") * (80 * MB)  # written, so resident
        assert breached.wait(10)
        del ballast
        assert recovered.wait(10)
    assert (monitor.breaches, monitor.recoveries) == (1, 1)
    assert len(monitor.samples()) == 2  # bounded: at least 3 samples were taken
    assert monitor.latest() is monitor.samples()[-1]
    status = monitor.status()
    json.dumps(status)
    assert status["latest"]["rss"] > 0 and status["breaches"] == 1


def test_breach_reports_top_allocations_when_tracemalloc_traces(make_supervisor, recorder) -> None:
    tracemalloc.start()
    try:
        monitor = MemoryMonitor(interval=0.01, rss_limit_mb=1, tracemalloc_top=3, gc_on_breach=True)
        with make_supervisor(monitor):
            breach = recorder.wait_for("memory.breach")
            recorder.wait_for("memory.gc")
    finally:
        tracemalloc.stop()
    assert len(breach["top_allocations"]) == 3


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        MemoryMonitor(percent_limit=150, sustained=0, hysteresis=1)
    assert [str(p) for p in info.value.problems] == [
        "percent_limit: must be <= 100 (got 150)",
        "sustained: must be >= 1 (got 0)",
        "hysteresis: must be < 1 (got 1)",
    ]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_and_usage(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/app.slice/web\n")
    write(tmp_path / "cg/app.slice/web/memory.max", "536870912\n")
    write(tmp_path / "cg/app.slice/web/memory.current", "134217728\n")
    found = find_cgroup_memory(tmp_path / "cg", tmp_path / "proc")
    assert found is not None and found.version == 2
    assert found.read() == (512 * MB, 128 * MB)


def test_cgroup_v2_without_a_limit(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/\n")
    write(tmp_path / "cg/memory.max", "max\n")
    write(tmp_path / "cg/memory.current", "1000\n")
    found = find_cgroup_memory(tmp_path / "cg", tmp_path / "proc")
    assert found is not None and found.read() == (None, 1000)


def test_cgroup_v1_limit_and_unlimited_sentinel(tmp_path: Path) -> None:
    write(tmp_path / "proc", "4:memory:/docker/abc\n0::/\n")
    write(tmp_path / "cg/memory/docker/abc/memory.limit_in_bytes", "268435456\n")
    write(tmp_path / "cg/memory/docker/abc/memory.usage_in_bytes", "1048576\n")
    found = find_cgroup_memory(tmp_path / "cg", tmp_path / "proc")
    assert found is not None and found.version == 1 and found.read() == (256 * MB, MB)
    (tmp_path / "cg/memory/docker/abc/memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert found.read() == (None, MB)


def test_no_cgroup_files_means_no_cgroup(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/\n")
    assert find_cgroup_memory(tmp_path / "cg", tmp_path / "proc") is None
    assert find_cgroup_memory(tmp_path / "cg", tmp_path / "missing") is None
