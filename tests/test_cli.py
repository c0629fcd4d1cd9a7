"""Every command run as a user runs it: the installed script, no PYTHONPATH, a real process.

Configurations name ``tests.sample_services:...``: importable because the command runs from the
repository root and the CLI puts the current directory on ``sys.path``, as uvicorn does.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bgservices
from bgservices._console import configure_logging

from ._process import ROOT, App, command, user_env

BGSERVICES = command("bgservices")


def cli(
    *args: str, timeout: float = 30, cwd: Path = ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BGSERVICES, *args],
        capture_output=True, text=True, timeout=timeout, env=user_env(**env), cwd=cwd,
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
    app = App([BGSERVICES, "run", write(tmp_path, VALID), "--status-every", "0",
               "--log-format", "console"], cwd=ROOT)  # fmt: skip
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


def test_a_status_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    done = cli("run", write(tmp_path, VALID), "--status-port", "70000", "--duration", "5")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "argument --status-port: must be 0..65535, got 70000" in done.stderr


def test_a_status_port_clashing_with_a_configured_name_is_reported(tmp_path: Path) -> None:
    config = VALID.replace("[services.memory]", "[services.status_server]")
    done = cli("run", write(tmp_path, config), "--status-port", "0", "--duration", "5")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.endswith(
        "1 problem(s):\n  services.status_server: --status-port adds a service named "
        "'status_server': rename this one\n"
    )
    assert done.stdout == ""  # reported before anything started


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "bgservices"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "run" in done.stdout and "demo" in done.stdout


# -- first contact: the traps of issue 11 ---------------------------------------------------

EXAMPLES = ROOT / "examples"


def test_check_imports_modules_from_the_current_directory() -> None:
    # services.toml names "prices:load_prices": prices.py is in the current directory
    done = cli("check", "services.toml", cwd=EXAMPLES)
    assert done.returncode == 0, done.stderr
    assert "services.toml: valid, 2 service(s)" in done.stdout


def test_app_dir_adds_a_directory_to_import_from(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "myjobs.py").write_text(
        "from bgservices import PeriodicService\n\n"
        "class Job(PeriodicService):\n    def tick(self) -> None:\n        pass\n"
    )
    (tmp_path / "conf").mkdir()
    config = write(tmp_path / "conf", '[services.job]\ntype = "myjobs:Job"\n')
    refused = cli("check", config, cwd=tmp_path / "conf")
    assert refused.returncode == 1 and "cannot import 'myjobs:Job'" in refused.stderr
    done = cli("check", config, "--app-dir", "../app", cwd=tmp_path / "conf")
    assert done.returncode == 0, done.stderr
    assert "job: Job (critical)" in done.stdout


def test_an_empty_services_table_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, "[supervisor]\nshutdown_timeout = 5\n\n[services]\n")
    checked = cli("check", path)
    assert checked.returncode == 1 and checked.stdout == "", checked.stdout
    assert checked.stderr.startswith(f"{path}: 1 problem(s):\n  services")
    assert "Traceback" not in checked.stderr
    ran = cli("run", path, "--duration", "5")
    assert ran.returncode == 1 and ran.stderr == checked.stderr  # reported, nothing started


def test_version_comes_from_the_installed_metadata() -> None:
    installed = importlib.metadata.version("bgservices")
    assert bgservices.__version__ == installed
    done = cli("--version")
    assert done.returncode == 0 and done.stdout == f"bgservices {installed}\n"


def test_types_name_shows_one_type() -> None:
    done = cli("types", "keep_alive")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("keep_alive  (daemon-safe; ")
    assert "memory_monitor" not in done.stdout and "    url: str (required)" in done.stdout


def test_types_with_an_unknown_name_exits_1_with_a_suggestion() -> None:
    done = cli("types", "keepalive")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "unknown service type 'keepalive' (did you mean keep_alive?)\n"


def test_types_does_not_offer_name_which_the_config_refuses() -> None:
    done = cli("types")
    assert done.returncode == 0
    assert "    name:" not in done.stdout
    assert "    restart:" in done.stdout  # the other common options are there


def test_duration_help_says_no_value_runs_until_a_signal() -> None:
    done = cli("run", "--help")
    assert "until a signal" in " ".join(done.stdout.split())


def test_types_into_a_pipe_closed_early_ends_quietly() -> None:
    # A reader that went away before the first write: every write fails (EPIPE).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [BGSERVICES, "types"], stdout=write_end, stderr=subprocess.PIPE, text=True,
            timeout=30, env=user_env(), cwd=ROOT,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored"
    assert done.returncode == 141  # 128 + SIGPIPE, as a shell reports for `yes | head`


def test_types_piped_to_head_prints_no_traceback() -> None:
    done = subprocess.run(
        f"{BGSERVICES} types | head -n 2", shell=True, capture_output=True, text=True,
        timeout=30, env=user_env(), cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    assert done.stderr == ""


# -- logging: --log-level and --log-format ----------------------------------------------------


def test_log_level_hides_records_below_it(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    quiet = cli("run", path, "--duration", "0.3", "--status-every", "0", "--log-level", "warning")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    usage = cli("run", path, "--log-level", "LOUD")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_log_format_console_renders_events_for_people(tmp_path: Path) -> None:
    done = cli("run", write(tmp_path, VALID), "--duration", "0.3", "--status-every", "0",
               "--log-format", "console")  # fmt: skip
    assert done.returncode == 0, done.stderr
    started = next(line for line in done.stderr.splitlines() if "supervisor.started" in line)
    assert "[info" in started and "{" not in started  # not JSON
    assert "\x1b[" not in done.stderr  # colours only on a terminal


# -- the demo -----------------------------------------------------------------------------------


def test_demo_piped_prints_lines_and_removes_its_files(tmp_path: Path) -> None:
    done = cli("demo", "--duration", "1.2", "--status-every", "0.3", timeout=60,
               TMPDIR=str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "bgservices demo: 8 services" in out and "\x1b[" not in out  # plain lines
    assert out.count("service  type") >= 3  # a table every 0.3 s, then the last one
    assert "health=up" in out and "runs=" in out and "rss=" in out and "accepted=" in out
    summary = out[out.index("Shutdown after") :]
    assert "critical  logs" in summary and "drained and flushed" in summary
    assert "critical  orders" in summary and ", 0 lost" in summary
    assert "daemon    report  abandoned mid-work" in summary
    assert "daemon    ping    stopped within the grace" in summary
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone
    # the abandoned service is one plain line, not a warning with a stack
    events = [json.loads(line) for line in done.stderr.splitlines()]
    abandoned = [e for e in events if e["event"] == "supervisor.abandoned"]
    assert len(abandoned) == 1 and abandoned[0]["level"] == "info"
    assert "stack" not in abandoned[0] and "Traceback" not in done.stderr
    assert not [e for e in events if e["level"] in ("warning", "error", "critical")]


def test_demo_keep_keeps_its_files_and_says_where(tmp_path: Path) -> None:
    done = cli("demo", "--duration", "0.5", "--status-every", "0", "--keep",
               "--log-level", "ERROR", timeout=60, TMPDIR=str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    (kept,) = tmp_path.iterdir()
    assert f"Files kept in {kept}" in done.stdout
    assert {p.name for p in kept.iterdir()} >= {"demo.log", "orders.db"}


def test_demo_on_a_terminal_redraws_the_status_in_place() -> None:
    import fcntl
    import pty
    import struct
    import termios
    import threading

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(
        [BGSERVICES, "demo", "--duration", "1.5", "--status-every", "0.25"],
        stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd, env=user_env(), cwd=ROOT,
    )  # fmt: skip
    os.close(child_fd)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        reader.join(10)
        os.close(main_fd)
    screen = b"".join(chunks).decode()
    rows = 1 + 8  # the header and eight services
    lift = f"\x1b[{rows}A\x1b[J"  # cursor up over the table, clear to the end of the screen
    tables = screen.count("service  type")
    assert tables >= 3, screen  # redrawn every 0.25 s, then the last one
    # every table but the first replaced the one before it, in place
    assert screen.count(lift) == tables - 1, screen
    assert "\x1b[" in screen.split("Shutdown after")[0]  # the log is in colour on a terminal
    assert "Shutdown after" in screen


# -- the console's renderers, for records as the library makes them ---------------------------


@pytest.fixture
def console_logging() -> Iterator[Callable[[str], io.StringIO]]:
    """configure_logging into a StringIO, with the root logger and structlog restored after."""
    import logging

    import structlog

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())

    def configure(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        configure_logging("INFO", fmt, stream)  # type: ignore[arg-type]
        return stream

    yield configure
    root.handlers[:], level, config = saved
    root.setLevel(level)
    structlog.configure(**config)


def _library_record(level: int, event: str, **fields: object) -> None:
    """A record shaped as bgservices makes them: the event and one attribute per field."""
    import logging

    message = " ".join([event, *(f"{k}={v!r}" for k, v in fields.items())])
    logging.getLogger("bgservices.supervisor").log(level, message, extra={"event": event, **fields})


def test_json_lines_carry_the_event_and_its_fields(console_logging: Any) -> None:
    import logging

    stream = console_logging("json")
    _library_record(logging.INFO, "supervisor.started", services=2, elapsed=0.01)
    _library_record(logging.DEBUG, "service.running", service="x")  # below the level
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "supervisor.started" and record["level"] == "info"
    assert record["services"] == 2 and record["elapsed"] == 0.01
    assert record["logger"] == "bgservices.supervisor" and record["timestamp"].endswith("Z")
    assert "message" not in record


def test_the_console_shows_the_event_and_its_fields(console_logging: Any) -> None:
    import logging

    stream = console_logging("console")
    _library_record(logging.WARNING, "memory.breach", rss_mb=600, limit_mb=512)
    line = stream.getvalue()
    assert "[warning  ] memory.breach" in line and "rss_mb=600" in line
    assert "limit_mb=512" in line and "[bgservices.supervisor]" in line


def test_an_abandoned_daemon_safe_service_is_one_plain_line(console_logging: Any) -> None:
    import logging

    stream = console_logging("json")
    stack = 'Traceback (most recent call last):\n  File "x.py", line 1'
    _library_record(logging.WARNING, "supervisor.abandoned", service="report", stack=stack)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "supervisor.abandoned" and record["level"] == "info"
    assert "stack" not in record and record["service"] == "report"
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # as with --log-level WARNING
    _library_record(logging.WARNING, "supervisor.abandoned", service="report", stack=stack)
    assert len(stream.getvalue().splitlines()) == 1  # an INFO line: not shown at WARNING
