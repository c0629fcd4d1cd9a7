"""Every example runs for real, as its README says (folder, command, no PYTHONPATH)."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import sqlite3
import subprocess
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from bgservices import ServiceState

from ._process import ROOT, App, command, user_env

EXAMPLES = ROOT / "examples"
EMBEDDING = EXAMPLES / "embedding"


def run_example(name: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python examples/NAME.py`` from the repository root, as examples/README.md says."""
    return subprocess.run(
        ["python", f"examples/{name}", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=user_env(),
    )  # fmt: skip


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
    app = App(["python", "examples/sqlite_writer.py", mode, str(db)], cwd=ROOT)
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


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        body: str = answer.read().decode()
        return body


def test_flask_logs_bgservices_events_with_its_own_and_stops_at_exit(unused_port: int) -> None:
    # The README's command, from examples/embedding: `flask --app flask_app run`
    app = App([command("flask"), "--app", "flask_app", "run", "--port", str(unused_port)],
              cwd=EMBEDDING)  # fmt: skip
    app.wait_line("Running on", stderr=True, timeout=30)
    health = json.loads(get(f"http://127.0.0.1:{unused_port}/health"))
    assert health["healthy"] is True and health["services"]["memory"]["state"] == "running"
    app.proc.send_signal(signal.SIGINT)  # Ctrl-C: the exit hook stops the supervisor
    code, out, err = app.finish(timeout=20)
    assert code == 0, err
    # bgservices' events in Flask's format, on Flask's stream, through its dictConfig
    ours = [line for line in err.splitlines() if " INFO in bgservices." in line]
    assert any("supervisor.started" in line for line in ours), err
    assert any("supervisor.stopped" in line for line in ours), err
    assert "supervisor." not in out


def test_gunicorn_runs_services_per_worker_and_tears_them_down_on_sigterm(
    tmp_path: Path, unused_port: int
) -> None:
    # The README's command, word for word, from examples/embedding
    app = App(
        [command("gunicorn"), "-c", "gunicorn.conf.py", "wsgi_app:app"],
        env=user_env(BIND=f"127.0.0.1:{unused_port}", COUNTS_DIR=str(tmp_path)),
        cwd=EMBEDDING,
    )
    app.wait_lines("services running", count=2, timeout=30, stderr=True)
    workers = {line.split()[1].rstrip(":") for line in app.err if "services running" in line}
    answers = [get(f"http://127.0.0.1:{unused_port}/") for _ in range(10)]
    assert all(a.endswith(": running\n") for a in answers)
    app.proc.send_signal(signal.SIGTERM)
    code, out, err = app.finish(timeout=30)
    assert code == 0, err
    saved = {p.name.removeprefix("teardown-"): int(p.read_text()) for p in tmp_path.iterdir()}
    assert set(saved) == workers  # every worker's critical teardown ran
    assert sum(saved.values()) == 10  # and saved every request it served
    # bgservices' events in gunicorn's format ("[pid] [INFO] event ..."), once per worker
    for event in ("supervisor.started", "supervisor.stopped"):
        pids = re.findall(rf"\[(\d+)\] \[INFO\] {event} ", err)
        assert set(pids) == workers, err
    assert "supervisor." not in out


def test_uvicorn_logs_bgservices_events_with_its_own(unused_port: int) -> None:
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install uvicorn)")
    # The README's command, from examples/embedding
    app = App([command("uvicorn"), "fastapi_app:app", "--log-config", "uvicorn_logging.ini",
               "--port", str(unused_port)], cwd=EMBEDDING)  # fmt: skip
    app.wait_line("Uvicorn running on", stderr=True, timeout=30)
    assert json.loads(get(f"http://127.0.0.1:{unused_port}/price/apple"))["price"] == 1.2
    app.proc.send_signal(signal.SIGTERM)
    code, _, err = app.finish(timeout=20)
    assert code == -signal.SIGTERM, err  # uvicorn stops gracefully, then re-raises the signal
    assert "Finished server process" in err
    ours = [line for line in err.splitlines() if line.startswith("INFO:") and "bgservices." in line]
    assert any("supervisor.started" in line for line in ours), err
    assert any("supervisor.stopped" in line for line in ours), err


def test_fastapi_async_services_under_uvicorn_with_sigterm(unused_port: int) -> None:
    """The async example under a real uvicorn: the warmer fetches a real upstream on
    127.0.0.1 with httpx on uvicorn's loop, and SIGTERM runs its async teardown."""
    import http.server
    import threading

    class Upstream(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"apple": 1.5}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server = threading.Thread(target=upstream.serve_forever, daemon=True)
    server.start()
    try:
        env = user_env(
            PRICES_URL=f"http://127.0.0.1:{upstream.server_address[1]}/prices", PRICES_EVERY="0.2"
        )
        app = App([command("uvicorn"), "fastapi_async:app", "--log-config", "uvicorn_logging.ini",
                   "--port", str(unused_port)], env=env, cwd=EMBEDDING)  # fmt: skip
        app.wait_line("prices.warm", stderr=True, timeout=30)
        app.wait_line("Uvicorn running on", stderr=True, timeout=30)
        assert json.loads(get(f"http://127.0.0.1:{unused_port}/price/apple"))["price"] == 1.5
        health = json.loads(get(f"http://127.0.0.1:{unused_port}/health"))
        assert health["services"]["prices"]["async"] is True and health["healthy"] is True
        app.proc.send_signal(signal.SIGTERM)
        code, _, err = app.finish(timeout=20)
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert code == -signal.SIGTERM, err
    assert "prices.client_closed" in err  # the async teardown ran, on uvicorn's loop
    assert "supervisor.stopped" in err and "stragglers=[]" in err
