"""What every benchmark reports, and the table that shows it."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
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


def print_table(results: Sequence[Result]) -> None:
    print(f"machine: {machine()}")
    header = f"{'benchmark':<44} {'unit':<10} {'ours':>10}  {'peers':<44} {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    for r in results:
        peers = ", ".join(f"{k}={v:.4g}" for k, v in r.peers.items())
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else "-"
        print(f"{r.name:<44} {r.unit:<10} {r.ours:>10.4g}  {peers:<44} {ratio:>7}  {r.target}")
        if r.note:
            print(f"{'':<44} {r.note}")


def write_json(results: Sequence[Result], path: Path) -> None:
    payload = {"machine": machine(), "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(payload, indent=2))


def quiet_logs() -> None:
    """Render lifecycle logs as usual but write them to /dev/null, so the table stays readable.

    The rendering cost stays in the figures; only the terminal's cost is left out.
    """
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")))  # noqa: SIM115
