"""Run every benchmark and print one table: ``python -m benchmarks [--quick] [--json FILE]``."""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from ._common import Result, print_table, quiet_logs, write_json
from ._peers import peer_versions

MODULES = [
    "stop_latency",
    "mass_end",
    "scale",
    "thread_scale",
    "async_services",
    "tick_accuracy",
    "log_throughput",
    "keepalive_connections",
    "keepalive_probe",
    "cache_reads",
    "import_time",
    "memory_sample",
    "leases",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, for CI")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    quiet_logs()
    began = time.monotonic()
    results: list[Result] = []
    for name in MODULES:
        module = importlib.import_module(f"benchmarks.{name}")
        results.extend(module.run(quick=args.quick))
    print_table(results)
    print(f"\npeers: {peer_versions()}")
    print(f"\n{len(results)} benchmarks in {time.monotonic() - began:.1f} s")
    if args.json:
        write_json(results, args.json)


if __name__ == "__main__":
    main()
