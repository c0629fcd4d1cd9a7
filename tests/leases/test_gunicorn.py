"""gunicorn, 4 workers, a leased CacheWarmer: one load per interval across the workers."""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .._process import SCRIPTS, App, command, user_env
from ._redis_server import RedisServer

APP = SCRIPTS / "leased_warmer"
INTERVAL = 0.2


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def _every_worker(reports: Path, settled: Callable[[list[str]], bool]) -> dict[str, list[str]]:
    """pid -> [role, value] from each worker's report, once *settled* holds for all four."""
    deadline = time.monotonic() + 30
    while True:
        lines = {p.name: p.read_text().split()[1:] for p in reports.glob("[0-9]*")}
        if len(lines) == 4 and all(settled(line) for line in lines.values()):
            return lines
        assert time.monotonic() < deadline, lines
        time.sleep(0.02)


def _run(
    env: dict[str, str], port: int, tmp: Path, settled: Callable[[list[str]], bool]
) -> tuple[dict[str, list[str]], float]:
    loads, reports = tmp / "loads", tmp / "reports"
    reports.mkdir()
    env = {**env, "LOADS": str(loads), "REPORTS": str(reports)}
    app = App([command("gunicorn"), "-c", "gunicorn.conf.py", "warmer_app:app"], env=env, cwd=APP)
    try:
        seen = _every_worker(reports, settled)
        pid, role, value = _get(f"http://127.0.0.1:{port}/").split()
        assert seen[pid] == [role, value]
        began = time.monotonic()
        first = len(loads.read_text().splitlines()) if loads.exists() else 0
        time.sleep(0.6)  # a window of three intervals, counted below
        window = len(loads.read_text().splitlines()) - first
        elapsed = time.monotonic() - began
        app.proc.send_signal(signal.SIGTERM)
        code, _, err = app.finish(timeout=30)
        assert code == 0, err
    finally:
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait(10)
    assert window <= elapsed / INTERVAL + 2, (window, elapsed)  # one load per interval, not four
    return seen, window / elapsed


def test_gunicorn_workers_share_one_leased_warmer_over_redis(
    redis_server: RedisServer, tmp_path: Path, unused_port: int
) -> None:
    env = user_env(BIND=f"127.0.0.1:{unused_port}", LEASE_URL=redis_server.url)
    seen, rate = _run(env, unused_port, tmp_path, lambda line: line[1] == "42")
    assert sorted(role for role, _ in seen.values()) == ["holder"] + ["standby"] * 3
    assert all(value == "42" for _, value in seen.values())  # every worker reads the values
    loaders = {line.split()[0] for line in (tmp_path / "loads").read_text().splitlines()}
    assert len(loaders) == 1  # one worker loaded, for all four
    print(f"\nRedis lease: {rate:.1f} loads/s across 4 workers (interval {INTERVAL}s)")


def _decided(line: list[str]) -> bool:
    """A standby worker, or the holder once its first load is in (a file lock shares no values)."""
    return line[0] == "standby" or line == ["holder", "42"]


def test_gunicorn_workers_share_one_leased_warmer_over_a_file_lock(
    tmp_path: Path, unused_port: int
) -> None:
    env = user_env(BIND=f"127.0.0.1:{unused_port}", LEASE_PATH=str(tmp_path / "warmer.lock"))
    seen, rate = _run(env, unused_port, tmp_path, _decided)
    roles = sorted(role for role, _ in seen.values())
    assert roles == ["holder"] + ["standby"] * 3
    holder = next(pid for pid, (role, _) in seen.items() if role == "holder")
    assert seen[holder][1] == "42"
    loaders = {line.split()[0] for line in (tmp_path / "loads").read_text().splitlines()}
    assert loaders == {holder}
    print(f"\nfile lock: {rate:.1f} loads/s across 4 workers (interval {INTERVAL}s)")
