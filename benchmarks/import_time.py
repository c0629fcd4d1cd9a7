"""``import bgservices`` against ``import structlog`` alone, each in fresh interpreters.

The best of many runs, minus a bare interpreter's start-up. Bytecode caching is turned on
(and warmed once) for both, as an installed package has it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ._common import Result, standalone

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def best_of(statement: str, runs: int) -> float:
    subprocess.run([sys.executable, "-c", statement], check=True, env=ENV)  # writes the .pyc
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, env=ENV)
        best = min(best, time.perf_counter() - began)
    return best


def run(quick: bool = False) -> list[Result]:
    runs = 5 if quick else 20
    bare = best_of("pass", runs)
    ours = best_of("import bgservices", runs) - bare
    structlog = best_of("import structlog", runs) - bare
    return [
        Result(
            name="import time, beyond a bare interpreter",
            unit="ms",
            ours=ours * 1000,
            peers={"import structlog alone": structlog * 1000},
            ratio=structlog / ours,
            target="no more than +30 % over structlog (ratio >= 0.77)",
            note="requests, psutil and the built-in services load on first use",
        )
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
