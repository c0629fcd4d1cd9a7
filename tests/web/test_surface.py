"""The status surface over real HTTP, mounted three ways: the built-in server
(``bgservices run --status-port``), FastAPI under uvicorn, Flask under gunicorn."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .._process import App, command, user_env

APPS = Path(__file__).parent / "apps"


@dataclass
class Surface:
    app: App
    base: str  # the URL the surface is mounted at
    control: Path  # files here drive the services (see apps/surface_services.py)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, timeout=5)

    def wait(self, path: str, status: int, timeout: float = 15.0) -> requests.Response:
        """Poll *path* until it answers *status* (bounded): the surface is read, not pushed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.get(path)
                if answer.status_code == status:
                    return answer
            except requests.ConnectionError:
                answer = None
            assert time.monotonic() < deadline, (
                f"{path} never answered {status}: {answer and answer.text!r}; "
                f"stderr={self.app.err[-20:]!r}"
            )
            time.sleep(0.02)

    def touch(self, name: str) -> None:
        (self.control / name).touch()

    def clear(self, name: str) -> None:
        (self.control / name).unlink()


def _launch(kind: str, port: int, control: Path) -> tuple[App, str]:
    env = user_env(BG_DIR=str(control), PYTHONUNBUFFERED="1")
    if kind == "builtin":
        argv = [command("bgservices"), "run", "surface.toml", "--status-port", str(port),
                "--status-every", "0", "--log-format", "json"]  # fmt: skip
        return App(argv, env=env, cwd=APPS), f"http://127.0.0.1:{port}"
    if kind == "uvicorn":
        argv = [command("uvicorn"), "fastapi_surface:app", "--port", str(port),
                "--host", "127.0.0.1"]  # fmt: skip
        return App(argv, env=env, cwd=APPS), f"http://127.0.0.1:{port}/bg"
    argv = [command("gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "flask_surface:app"]
    return App(argv, env=env, cwd=APPS), f"http://127.0.0.1:{port}/bg"


@pytest.fixture(params=["builtin", "uvicorn", "gunicorn"])
def surface(request: pytest.FixtureRequest, unused_port: int, tmp_path: Path) -> Iterator[Surface]:
    app, base = _launch(request.param, unused_port, tmp_path)
    surface = Surface(app, base, tmp_path)
    try:
        surface.wait("/livez", 200, timeout=30)
        yield surface
    finally:
        app.proc.send_signal(signal.SIGTERM)
        app.finish(20)


def test_health_readiness_metrics_and_page_over_http(surface: Surface) -> None:
    # Ready only after the cache's first load.
    not_ready = surface.wait("/readyz", 503)
    assert "prices" in not_ready.json()["not_ready"]
    surface.touch("load")
    assert surface.wait("/readyz", 200).json() == {"ready": True, "not_ready": []}
    assert surface.wait("/healthz", 200).json()["healthy"] is True
    head = requests.head(surface.base + "/readyz", timeout=5)  # GET's headers, no body
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(surface.get("/readyz").content))

    # Failing ticks: 503 within a few ticks, with the reason; back to 200 after recovery.
    surface.touch("broken")
    report = surface.wait("/healthz", 503).json()
    assert report["failing"] == ["flaky"]
    assert "failing ticks in a row" in " ".join(report["services"]["flaky"]["reasons"])
    assert surface.get("/livez").status_code == 503
    page = surface.get("/").text
    assert "&lt;script&gt;alert(" in page and "<script>alert(" not in page
    surface.clear("broken")
    surface.wait("/healthz", 200)

    # A stalled run() loop: failing after stall_after, ok again once it beats.
    surface.touch("stall")
    report = surface.wait("/healthz", 503).json()
    assert report["failing"] == ["looper"]
    assert "no progress" in report["services"]["looper"]["reasons"][0]
    surface.clear("stall")
    surface.wait("/healthz", 200)

    # Metrics parse as Prometheus text.
    metrics = surface.get("/metrics")
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    assert families["bgservices_service_ticks"].type == "counter"
    assert families["bgservices_service_tick_duration_seconds"].type == "histogram"
    ticks = [
        s for s in families["bgservices_service_ticks"].samples if s.labels["service"] == "flaky"
    ]
    assert ticks[0].name == "bgservices_service_ticks_total" and ticks[0].value > 0
    assert families["bgservices_cache_entries"].samples[0].value == 1
    assert json.loads(surface.get("/status").text)["services"]["prices"]["runs"] >= 1


def test_bgservices_status_exits_by_health(unused_port: int, tmp_path: Path) -> None:
    app, base = _launch("builtin", unused_port, tmp_path)
    surface = Surface(app, base, tmp_path)
    try:
        surface.wait("/livez", 200, timeout=30)
        surface.touch("load")
        surface.wait("/healthz", 200)
        ok = subprocess.run([command("bgservices"), "status", base], capture_output=True,
                            text=True, env=user_env(), timeout=30)  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert "healthy" in ok.stdout and "flaky" in ok.stdout
        surface.touch("broken")
        surface.wait("/healthz", 503)
        bad = subprocess.run([command("bgservices"), "status", base], capture_output=True,
                             text=True, env=user_env(), timeout=30)  # fmt: skip
        assert bad.returncode == 1
        assert "failing" in bad.stdout and "unhealthy" in bad.stdout
    finally:
        app.proc.send_signal(signal.SIGTERM)
        app.finish(20)
    gone = subprocess.run([command("bgservices"), "status", base], capture_output=True,
                          text=True, env=user_env(), timeout=30)  # fmt: skip
    assert gone.returncode == 1 and "cannot reach" in gone.stderr


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        # .ci/run installs Debian's chromium where it is missing: under CI this test skips
        # only if .ci/run said it could not, as the Redis fixture does.
        if os.environ.get("CI") and not os.environ.get("BGSERVICES_NO_CHROMIUM"):
            pytest.fail("chromium is not installed, and CI must run the browser test")
        pytest.skip("chromium is not installed and could not be (see .ci/run)")
    return found


def _chromium_run(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = Path(tempfile.mkdtemp(dir=tmp, prefix="profile-"))
    argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=90)


def test_the_page_in_a_real_browser_shows_a_failing_service(
    unused_port: int, tmp_path: Path
) -> None:
    binary = _chromium()
    app, base = _launch("builtin", unused_port, tmp_path)
    surface = Surface(app, base, tmp_path)
    try:
        surface.wait("/livez", 200, timeout=30)
        surface.touch("load")
        surface.touch("broken")
        surface.wait("/healthz", 503)
        dom = _chromium_run(binary, tmp_path, "--dump-dom", base + "/")
        assert dom.returncode == 0, dom.stderr[-2000:]
        row = next(line for line in dom.stdout.splitlines() if 'data-service="flaky"' in line)
        assert 'class="failing">failing<' in row
        assert "&lt;script&gt;" in row  # the error is shown, as text: the page ran no script
        shot = tmp_path / "page.png"
        done = _chromium_run(binary, tmp_path, f"--screenshot={shot}", "--window-size=1200,800",
                             base + "/")  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        app.proc.send_signal(signal.SIGTERM)
        app.finish(20)
