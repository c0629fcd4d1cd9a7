"""Child processes as a user starts them: installed commands, no PYTHONPATH, bounded waits;
a free port for a server, and a bounded poll for state that has nothing to wait on."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

SCRIPTS = Path(__file__).parent / "scripts"
ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent  # where this environment installed its console scripts

T = TypeVar("T")


def until(predicate: Callable[[], T], timeout: float = 10.0) -> T | None:
    """Call *predicate* every 10 ms until it returns something true, and return that; None
    once *timeout* seconds have passed. For state in another process or a store, which no
    event or condition signals."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return found


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command(name: str) -> str:
    """The installed console script *name* (``bgservices``, ``gunicorn``), as a shell finds it."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed in {BIN}"
    return found


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: this environment's scripts first, no PYTHONPATH.

    The suite must see what a user sees: the CLI finding modules in the current directory
    by itself, not because the test put them on the path.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def _as_from_a_terminal() -> None:
    """In the child: Ctrl-C (SIGINT) does what it does for a command typed in a terminal.

    A shell without job control starts background commands with SIGINT ignored, and the
    child would inherit that: the suite run as ``pytest &`` from a script must still test
    what Ctrl-C does.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class App:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else user_env(),
            cwd=cwd,
            preexec_fn=_as_from_a_terminal,
        )
        self._cond = threading.Condition()
        self.out: list[str] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @classmethod
    def script(cls, name: str, *args: str) -> App:
        """Run ``tests/scripts/<name>`` with this interpreter."""
        return cls([sys.executable, str(SCRIPTS / name), *args])

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._cond:
                lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, text: str, timeout: float = 10.0, *, stderr: bool = False) -> None:
        """Wait until a line containing *text* has been printed."""
        lines = self.err if stderr else self.out
        with self._cond:
            found = self._cond.wait_for(lambda: any(text in line for line in lines), timeout)
        assert found, f"never printed {text!r}; stdout={self.out!r} stderr={self.err!r}"

    def wait_lines(
        self, text: str, count: int, timeout: float = 10.0, *, stderr: bool = False
    ) -> None:
        """Wait until *count* lines containing *text* have been printed."""
        lines = self.err if stderr else self.out
        with self._cond:
            found = self._cond.wait_for(
                lambda: sum(text in line for line in lines) >= count, timeout
            )
        assert found, f"not {count} x {text!r}; stdout={self.out!r} stderr={self.err!r}"

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Wait for the exit (killing the process past *timeout*): (code, stdout, stderr)."""
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        for reader in self._readers:
            reader.join(5)
        return code, "\n".join(self.out), "\n".join(self.err)
