"""The exit-path matrix, each case in a real subprocess with a real interpreter shutdown."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bgservices import EXIT_STRAGGLER

from ._process import App

SHUTDOWN_TIMEOUT = 2.0


@pytest.mark.parametrize(
    ("mode", "sig", "expected_code"),
    [
        ("return", None, 0),
        ("exit3", None, 3),
        ("raise", None, 1),
        ("run", signal.SIGTERM, 0),
        ("run", signal.SIGINT, 0),
        ("handlers", signal.SIGTERM, 128 + signal.SIGTERM),
        ("handlers", signal.SIGINT, -signal.SIGINT),  # KeyboardInterrupt: Python re-kills itself
    ],
    ids=[
        "main-returns",
        "sys-exit-3",
        "unhandled-exception",
        "sigterm",
        "sigint",
        "sigterm-app-loop",
        "sigint-app-loop",
    ],
)
def test_critical_teardown_runs_and_exit_code_is_kept(
    tmp_path: Path, mode: str, sig: signal.Signals | None, expected_code: int
) -> None:
    app = App.script("exit_app.py", mode, str(tmp_path))
    app.wait_line("READY")
    began = time.monotonic()
    if sig is not None:
        app.proc.send_signal(sig)
    code, out, err = app.finish(timeout=SHUTDOWN_TIMEOUT + 2)
    assert time.monotonic() - began < SHUTDOWN_TIMEOUT + 2
    assert code == expected_code, err
    assert (tmp_path / "teardown").read_text() == "flushed"
    assert "service.stopped" in out
    if mode == "raise":
        assert "RuntimeError: unhandled in main" in err


def test_second_sigint_exits_at_once_with_130_and_stacks(tmp_path: Path) -> None:
    app = App.script("exit_app.py", "double-sigint", str(tmp_path))
    app.wait_line("READY")
    app.proc.send_signal(signal.SIGINT)
    app.wait_line("TEARDOWN")  # the graceful stop is stuck in a slow teardown
    began = time.monotonic()
    app.proc.send_signal(signal.SIGINT)
    code, _, err = app.finish(timeout=2)
    assert code == 130 and time.monotonic() - began < 2
    assert "second SIGINT, exiting now" in err
    assert "bgservices:writer" in err and "in teardown" in err


def test_without_the_pre_join_hook_a_watcher_thread_stops_the_supervisor(tmp_path: Path) -> None:
    app = App.script("no_prejoin_hook_app.py", str(tmp_path))
    app.wait_line("READY")
    code, _, err = app.finish(timeout=SHUTDOWN_TIMEOUT + 2)
    assert code == 0, err
    assert (tmp_path / "teardown").read_text() == "flushed"


def test_ctrl_c_while_the_exit_hook_waits_exits_at_once(tmp_path: Path) -> None:
    app = App.script("exit_app.py", "ctrl-c-at-exit", str(tmp_path))
    app.wait_line("READY")
    app.wait_line("TEARDOWN")  # main returned; the exit hook waits on a slow teardown
    began = time.monotonic()
    app.proc.send_signal(signal.SIGINT)  # no handlers installed: KeyboardInterrupt in the hook
    code, _, err = app.finish(timeout=2)
    assert code == 130 and time.monotonic() - began < 2
    assert "in teardown" in err


def test_a_straggler_is_reported_with_its_stack_and_the_process_still_ends(tmp_path: Path) -> None:
    app = App.script("exit_app.py", "straggler", str(tmp_path))
    app.wait_line("READY")
    began = time.monotonic()
    code, out, _err = app.finish(timeout=SHUTDOWN_TIMEOUT + 2)
    assert time.monotonic() - began < SHUTDOWN_TIMEOUT + 2
    assert code == EXIT_STRAGGLER
    assert (tmp_path / "teardown").read_text() == "flushed"  # the others were stopped properly
    assert "supervisor.straggler" in out and "in run" in out and "time.sleep" in out
    assert "supervisor.exit_forced" in out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_restarts_its_supervisor_and_exits_cleanly(tmp_path: Path) -> None:
    app = App.script("fork_app.py", str(tmp_path))
    code, out, err = app.finish(timeout=15)
    assert code == 0, err
    child_exit = next(line for line in out.splitlines() if line.startswith("CHILD EXIT"))
    _, _, status, child_pid = child_exit.split()
    assert status == "0", out
    assert f"CHILD {child_pid} running" in out
    assert "PARENT True" in out
    teardowns = sorted(p.name for p in tmp_path.iterdir())
    assert teardowns == sorted([f"teardown-{child_pid}", f"teardown-{app.proc.pid}"])


def test_sigkill_runs_nothing_as_documented(tmp_path: Path) -> None:
    app = App.script("exit_app.py", "run", str(tmp_path))
    app.wait_line("READY")
    app.proc.send_signal(signal.SIGKILL)
    code, _, _ = app.finish(timeout=5)
    assert code == -signal.SIGKILL
    assert not (tmp_path / "teardown").exists()  # no code runs after SIGKILL: nothing can
