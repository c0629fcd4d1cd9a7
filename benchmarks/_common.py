"""What every benchmark reports, and the table that shows it."""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Result:
    """One benchmark: our figure, each peer's, and how ours compares (``ratio``)."""

    name: str
    unit: str
    ours: float
    peers: dict[str, float] = field(default_factory=dict)
    #: peer figure / our figure for "lower is better" units, so > 1 means we win.
    ratio: float | None = None
    target: str = ""
    note: str = ""


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {platform.python_version()} ({sys.platform})"


def figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def print_table(results: Sequence[Result]) -> None:
    print(f"machine: {machine()}")
    for r in results:
        ratio = f"  ratio {r.ratio:.1f}x" if r.ratio is not None else ""
        print(f"\n{r.name} [{r.unit}]{ratio}   target: {r.target}")
        print(f"    {'bgservices':<34} {figure(r.ours):>12}")
        for peer, value in r.peers.items():
            print(f"    {peer:<34} {figure(value):>12}")
        if r.note:
            print(f"    note: {r.note}")


def write_json(results: Sequence[Result], path: Path) -> None:
    payload = {"machine": machine(), "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(payload, indent=2))


def standalone(run: Callable[[bool], list[Result]], doc: str | None) -> None:
    """The ``__main__`` of a benchmark module: ``[--quick]``, quiet logs, print the table."""
    import argparse

    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    quiet_logs()
    print_table(run(quick))


def quiet_logs() -> None:
    """Send warnings and errors to /dev/null rather than the terminal, so the table stays
    readable; the library's defaults stay as they are (INFO lifecycle events disabled)."""
    import logging

    logging.getLogger("bgservices").addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115


def wait_idle(conditions: list[threading.Condition], timeout: float = 30.0) -> None:
    """Return once a thread waits on each of *conditions* (each idle thread waits on one),
    and a moment more for the last of them to fall asleep: a stop then measures idle
    threads, not threads still on their way in. Raises after *timeout*."""
    deadline = time.monotonic() + timeout
    while any(not cond._waiters for cond in conditions):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise RuntimeError(f"threads not idle after {timeout:g} s")
        time.sleep(0.001)
    time.sleep(0.02)
