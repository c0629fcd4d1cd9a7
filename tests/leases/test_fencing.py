"""Fencing tokens: a stale holder's late write is refused by the store."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bgservices.leases import FileLeaseBackend, RedisLeaseBackend

from .._process import ROOT, until
from ._redis_server import RedisServer


def _example() -> ModuleType:
    """examples/fenced_write.py, loaded from its file (examples are not a package)."""
    spec = importlib.util.spec_from_file_location("fenced_write", ROOT / "examples/fenced_write.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_stale_holders_write_is_refused(redis_server: RedisServer, tmp_path: Path) -> None:
    table = _example().FencedTable(str(tmp_path / "report.db"))
    paused, fresh = RedisLeaseBackend(redis_server.url), RedisLeaseBackend(redis_server.url)
    try:
        old = paused.acquire("report", 0.2)
        assert old is not None
        assert table.write("daily", "old holder", old.token)
        # The old holder is paused past its TTL: no renewal, and the lease expires.
        new = until(lambda: fresh.acquire("report", 5.0))
        assert new is not None and new.token > old.token
        assert table.write("daily", "new holder", new.token)
        assert not table.write("daily", "old holder, late", old.token)  # refused
        assert table.read("daily") == ("new holder", new.token)
        assert not paused.renew(old, 0.2)  # and on waking it learns it lost the lease
    finally:
        paused.close()
        fresh.close()


def test_the_fencing_example_runs_as_documented(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/fenced_write.py", str(tmp_path / "r.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "holder wrote with token" in done.stdout
    assert done.stdout.rstrip().endswith(": refused")


def test_the_fencing_example_gives_up_with_a_reason_when_the_lock_is_held(
    tmp_path: Path,
) -> None:
    lock = str(tmp_path / "r.lock")
    other = FileLeaseBackend()
    held = other.acquire(lock, 1.0)  # another process's hold: the example's service waits
    assert held is not None
    try:
        with pytest.raises(SystemExit, match=r"no report within 0\.3 s: .*hold .*r\.lock\?"):
            _example().main(str(tmp_path / "r.db"), timeout=0.3)
    finally:
        other.release(held)
