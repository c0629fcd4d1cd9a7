"""Every command run as a real subprocess: exit codes and output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._process import App

ROOT = Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # so that configs can import tests.sample_services


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bgservices", *args],
        capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT,
    )  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "services.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


VALID = """
    [supervisor]
    shutdown_timeout = 5

    [services.beat]
    type = "tests.sample_services:Heartbeat"
    interval = 0.05

    [services.memory]
    type = "memory_monitor"
    interval = 0.1
"""


def test_check_accepts_a_valid_file(tmp_path: Path) -> None:
    done = cli("check", write(tmp_path, VALID))
    assert done.returncode == 0, done.stderr
    assert "valid, 2 service(s)" in done.stdout
    assert "beat: Heartbeat (daemon-safe)" in done.stdout
    assert "memory: memory_monitor (daemon-safe)" in done.stdout


def test_check_prints_every_problem_without_a_traceback(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version = 3
        [services.memory]
        type = "memory_monitor"
        interval = -1
        rss_limit = 5
        """,
    )
    done = cli("check", path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{path}: 3 problem(s):",
        "  version: unsupported version 3 (this bgservices reads 1)",
        "  services.memory.rss_limit: unknown option (did you mean rss_limit_mb?)",
        "  services.memory.interval: must be > 0 (got -1)",
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.toml", None, "cannot read"),
        ("bad.toml", "[services\n", "invalid TOML"),
        ("bad.yaml", "a: 1", "unsupported file type '.yaml'"),
    ],
)
def test_check_reports_bad_files_plainly(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    done = cli("check", str(tmp_path / name))
    assert done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr


def test_usage_errors_exit_2() -> None:
    assert cli().returncode == 2
    assert cli("check").returncode == 2
    assert cli("run", "x.toml", "--duration", "-1").returncode == 2
    assert cli("frobnicate").returncode == 2


def test_types_lists_every_builtin_with_its_options() -> None:
    done = cli("types")
    assert done.returncode == 0
    out = done.stdout
    for line in (
        "memory_monitor  (daemon-safe; bgservices.services.memory:MemoryMonitor)",
        "cache_warmer  (daemon-safe; bgservices.services.cache:CacheWarmer)",
        "keep_alive  (daemon-safe; bgservices.services.keepalive:KeepAlive)",
        "log_collector  (critical; bgservices.services.logs:LogCollector)",
        "    url: str (required)  The URL to ping (http or https).",
        "    interval: float (default 10.0, > 0)  Seconds between ticks.",
    ):
        assert line in out


def test_run_for_a_duration_prints_status_and_exits_0(tmp_path: Path) -> None:
    done = cli("run", write(tmp_path, VALID), "--duration", "1", "--status-every", "0.3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("service  type") >= 3  # periodic tables and the final one
    assert "beat     Heartbeat" in done.stdout and "stopped" in done.stdout
    events = [json.loads(line)["event"] for line in done.stderr.splitlines()]  # JSON: no tty
    assert "supervisor.started" in events and events[-1] == "supervisor.stopped"


def test_run_exits_1_when_failure_policy_shuts_down(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [supervisor]
        failure_policy = "shutdown"
        [services.beat]
        type = "tests.sample_services:Heartbeat"
        [services.crash]
        type = "tests.sample_services:Crasher"
        restart = "never"
        """,
    )
    done = cli("run", path, "--duration", "30", "--status-every", "0")
    assert done.returncode == 1
    assert "supervisor.failure_shutdown" in done.stderr


def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    app = App([sys.executable, "-m", "bgservices", "run", write(tmp_path, VALID),
                       "--status-every", "0", "--log-format", "console"], env=ENV)  # fmt: skip
    app.wait_line("supervisor.started", stderr=True)
    app.proc.send_signal(signal.SIGTERM)
    code, out, err = app.finish(timeout=10)
    assert code == 0, err
    assert "supervisor.stopped" in err and "stopped" in out


def test_run_with_an_invalid_file_exits_1_before_starting(tmp_path: Path) -> None:
    done = cli("run", write(tmp_path, "[services.x]\ntype = 'nope'\n"))
    assert done.returncode == 1
    assert "services.x.type: unknown service type 'nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_runs_everything_and_reports_the_shutdown() -> None:
    done = cli("demo", "--duration", "3", "--status-every", "1", timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "bgservices demo: 8 services" in out
    assert "health=up" in out and "runs=" in out and "rss=" in out
    summary = out[out.index("Shutdown after") :]
    assert "critical  logs" in summary and "drained and flushed" in summary
    assert "critical  orders" in summary and ", 0 lost" in summary
    assert "daemon    report  abandoned mid-work" in summary
    assert "daemon    ping    stopped within the grace" in summary


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "bgservices"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "run" in done.stdout and "demo" in done.stdout
