"""Every example runs for real and prints what the README says it does."""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from bgservices import ServiceState

from ._process import App

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output_of(name: str) -> list[str]:
    done = run_example(name)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def load(name: str) -> ModuleType:
    path = EXAMPLES / "embedding" / name
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the tutorial's lessons, with bare threading ----------------------------------------------


def test_a_daemon_thread_is_abandoned_and_its_finally_never_runs() -> None:
    assert output_of("threads/daemon_abandoned.py") == ["main: daemon thread alive=True, exiting"]


def test_daemon_is_set_before_start_and_refused_after() -> None:
    assert output_of("threads/set_daemon_before_start.py") == [
        "before start: daemon=False",
        "set before start: daemon=True",
        "set after start: RuntimeError: cannot set daemon status of active thread",
    ]


def test_the_interpreter_waits_for_non_daemon_threads_only() -> None:
    assert output_of("threads/daemon_and_non_daemon.py") == [
        "main: returning without join()",
        "non-daemon: finished its work (the interpreter waited for it)",
    ]


def test_stop_event_and_join_stops_in_milliseconds() -> None:
    worker, main = output_of("threads/stop_event_join.py")
    assert worker == "worker: cleanup ran"
    assert main.startswith("main: joined ") and int(main.split()[2]) < 500


def test_a_daemon_threads_child_inherits_daemon_status() -> None:
    assert output_of("threads/daemon_child_inherits.py") == [
        "child of a daemon thread, daemon not given: daemon=True",
        "child of a daemon thread, daemon=False:     daemon=False",
    ]


# -- the same lessons with bgservices ---------------------------------------------------------


def test_daemon_vs_critical_runs_critical_teardown_and_abandons_the_daemon() -> None:
    assert output_of("daemon_vs_critical.py") == [
        "main: returning now",
        "critical  flusher: teardown ran, buffered data written",
    ]


def test_custom_service() -> None:
    assert output_of("custom_service.py") == [
        "bad options, all reported at once:",
        "min_free: unknown option (did you mean min_free_percent?)",
        "interval: must be > 0 (got -1)",
        "echo replied b'ping'",
        "watcher daemon=True, echo daemon=False",
        "echo: socket closed, teardown done",
        "after stop: stopped, stopped",
    ]


def test_from_config() -> None:
    assert output_of("from_config.py") == [
        "started: memory (memory_monitor), warm (cache_warmer)",
        "apple costs 1.2",
        "invalid configuration, nothing started:",
        "services.memory.rss_limit: unknown option (did you mean rss_limit_mb?)",
        "services.memory.interval: must be > 0 (got 0)",
        "services.warm.type: unknown service type 'cache_warmr' (did you mean cache_warmer?)",
    ]


@pytest.mark.parametrize("mode", ["return", "exit", "raise", "signal"])
def test_sqlite_writer_commits_every_row_on_every_exit_path(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "events.db"
    app = App([sys.executable, str(EXAMPLES / "sqlite_writer.py"), mode, str(db)])
    app.wait_line("READY")
    if mode == "signal":
        app.proc.send_signal(signal.SIGTERM)
    code, out, err = app.finish(timeout=15)
    assert code == (1 if mode == "raise" else 0), err
    assert "teardown: committed 1000 of 1000 rows" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (1000,)


# -- embedding in real servers ----------------------------------------------------------------


def test_fastapi_lifespan_starts_and_stops_the_services() -> None:
    from fastapi.testclient import TestClient

    module = load("fastapi_app.py")
    with TestClient(module.app) as client:
        assert client.get("/price/apple").json() == {"item": "apple", "price": 1.2}
        assert client.get("/price/plum").status_code == 404
        health = client.get("/health").json()
        assert health["healthy"] is True
        assert {s["state"] for s in health["services"].values()} == {"running"}
        sup = module.app.state.supervisor
    assert [s.state for s in sup] == [ServiceState.STOPPED, ServiceState.STOPPED]


def test_flask_factory_owns_a_supervisor() -> None:
    module = load("flask_app.py")
    app = module.create_app()
    sup = app.extensions["bgservices"]
    try:
        assert sup.wait_running(5)
        health = app.test_client().get("/health").get_json()
        assert health["healthy"] is True and health["services"]["memory"]["state"] == "running"
    finally:
        sup.stop()


def test_gunicorn_runs_services_per_worker_and_tears_them_down_on_sigterm(
    tmp_path: Path, unused_port: int
) -> None:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    env = {**os.environ, "BIND": f"127.0.0.1:{unused_port}", "COUNTS_DIR": str(tmp_path)}
    app = App(
        [str(gunicorn), "-c", str(EXAMPLES / "embedding" / "gunicorn.conf.py"),
         "--chdir", str(EXAMPLES / "embedding"),
         "wsgi_app:app"],
        env=env,
    )  # fmt: skip
    app.wait_lines("services running", count=2, timeout=30, stderr=True)
    workers = {line.split()[1].rstrip(":") for line in app.err if "services running" in line}
    answers = [
        urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/", timeout=5).read().decode()
        for _ in range(10)
    ]
    assert all(a.endswith(": running\n") for a in answers)
    app.proc.send_signal(signal.SIGTERM)
    code, _, err = app.finish(timeout=30)
    assert code == 0, err
    saved = {p.name.removeprefix("teardown-"): int(p.read_text()) for p in tmp_path.iterdir()}
    assert set(saved) == workers  # every worker's critical teardown ran
    assert sum(saved.values()) == 10  # and saved every request it served
