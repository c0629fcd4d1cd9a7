"""Log throughput, 4 threads -> one file, and records lost when the program just ends.

Ours: ``LogCollector`` (JSON lines rendered by structlog, written in batches). Peers: the
stdlib's best non-blocking setup, ``QueueHandler`` + ``QueueListener`` + ``FileHandler``, and
a plain ``FileHandler`` every thread writes through. Throughput counts from the first record
logged until the last is on disk. Loss at exit runs each setup in a child process whose main
thread returns right after logging, with no explicit stop.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bgservices import Supervisor
from bgservices.services import LogCollector

from ._common import Result, print_table, quiet_logs

THREADS = 4
PLAIN = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _produce(logger: logging.Logger, per_thread: int) -> None:
    def work(t: int) -> None:
        for n in range(per_thread):
            logger.info("record %d from thread %d", n, t)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _fresh_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def ours(path: Path, per_thread: int) -> float:
    logger = _fresh_logger("bench.ours")
    collector = LogCollector(path=str(path), loggers=["bench.ours"], max_bytes=0)
    sup = Supervisor([collector], stop_at_exit=False)
    sup.start()
    began = time.perf_counter()
    _produce(logger, per_thread)
    sup.stop()
    return time.perf_counter() - began


def stdlib_queue(path: Path, per_thread: int) -> float:
    logger = _fresh_logger("bench.queue")
    target = logging.FileHandler(path)
    target.setFormatter(logging.Formatter(PLAIN))
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    logger.addHandler(logging.handlers.QueueHandler(q))
    listener = logging.handlers.QueueListener(q, target, respect_handler_level=False)
    listener.start()
    began = time.perf_counter()
    _produce(logger, per_thread)
    listener.stop()
    elapsed = time.perf_counter() - began
    target.close()
    return elapsed


def stdlib_direct(path: Path, per_thread: int) -> float:
    logger = _fresh_logger("bench.direct")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(PLAIN))
    logger.addHandler(handler)
    began = time.perf_counter()
    _produce(logger, per_thread)
    elapsed = time.perf_counter() - began
    handler.close()
    return elapsed


def _child(kind: str, path: str, per_thread: int) -> None:
    """In a child process: log, then let the main thread end without stopping anything."""
    logger = _fresh_logger("bench.exit")
    if kind == "ours":
        Supervisor([LogCollector(path=path, loggers=["bench.exit"], max_bytes=0)]).start()
    else:
        target = logging.FileHandler(path)
        q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        logger.addHandler(logging.handlers.QueueHandler(q))
        logging.handlers.QueueListener(q, target).start()  # never stopped, as often in real code
    _produce(logger, per_thread)


def lost_at_exit(kind: str, per_thread: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exit.log"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.log_throughput", "--child", kind, str(path),
             str(per_thread)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        written = len(path.read_text().splitlines()) if path.exists() else 0
    return THREADS * per_thread - written


def _rate(run: Callable[[Path, int], float], per_thread: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.log"
            best = min(best, run(path, per_thread))
            assert len(path.read_text().splitlines()) == THREADS * per_thread
    return THREADS * per_thread / best


def run(quick: bool = False) -> list[Result]:
    per_thread = 5_000 if quick else 25_000
    repeats = 1 if quick else 3
    rate_ours = _rate(ours, per_thread, repeats)
    rate_queue = _rate(stdlib_queue, per_thread, repeats)
    rate_direct = _rate(stdlib_direct, per_thread, repeats)
    lost_ours = lost_at_exit("ours", per_thread)
    lost_queue = lost_at_exit("stdlib", per_thread)
    return [
        Result(
            name=f"log throughput, {THREADS} threads -> file",
            unit="records/s",
            ours=rate_ours,
            peers={"QueueHandler+QueueListener": rate_queue, "FileHandler": rate_direct},
            ratio=rate_ours / rate_queue,
            target=">= 1.0x the stdlib queue pair",
            note="ours renders JSON lines with structlog; the stdlib peers a plain format line",
        ),
        Result(
            name=f"records lost at exit (of {THREADS * per_thread})",
            unit="records",
            ours=lost_ours,
            peers={"QueueHandler+QueueListener": lost_queue},
            target="0 lost",
            note="the stdlib listener's thread is a daemon: without stop() its queue is abandoned",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "PER_THREAD"))
    args = parser.parse_args()
    quiet_logs()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
    else:
        print_table(run(args.quick))
