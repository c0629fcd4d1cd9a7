"""Every example runs as a real subprocess and prints what the README says it does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_daemon_vs_critical_runs_critical_teardown_and_abandons_the_daemon() -> None:
    done = run_example("daemon_vs_critical.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "main: returning now",
        "critical  flusher: teardown ran, buffered data written",
    ]
