"""Log throughput, 4 threads -> one file, and records lost when the program just ends.

Ours: ``LogCollector`` (JSON lines, written in batches), unbounded and with ``max_queue``.
Peers: the stdlib's best non-blocking setup, ``QueueHandler`` + ``QueueListener`` +
``FileHandler``; a plain ``FileHandler`` every thread writes through; and loguru with
``enqueue=True`` (its non-blocking mode). The peers write a plain format line, cheaper than
JSON. Throughput counts from the first record logged until the last is on disk. Loss at exit
runs each setup in a child process whose main thread returns right after logging, with no
explicit stop.
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


def ours(path: Path, per_thread: int, max_queue: int = 0) -> float:
    logger = _fresh_logger("bench.ours")
    collector = LogCollector(
        path=str(path), loggers=["bench.ours"], max_bytes=0, max_queue=max_queue
    )
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


def ours_bounded(path: Path, per_thread: int) -> float:
    return ours(path, per_thread, max_queue=10_000)


def loguru_enqueue(path: Path, per_thread: int) -> float:
    from loguru import logger

    logger.remove()
    sink = logger.add(path, enqueue=True, format="{time} {level} {name} {message}")

    def work(t: int) -> None:
        for n in range(per_thread):
            logger.info("record {} from thread {}", n, t)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.complete()  # until the queue is written
    logger.remove(sink)
    return time.perf_counter() - began


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


def _rates(
    runs: dict[str, Callable[[Path, int], float]], per_thread: int, repeats: int
) -> dict[str, float]:
    """Records/s of each setup, best of *repeats*, the setups taking turns (so load is shared)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bench.log"
                best[name] = min(best[name], run(path, per_thread))
                assert len(path.read_text().splitlines()) == THREADS * per_thread
    return {name: THREADS * per_thread / seconds for name, seconds in best.items()}


def run(quick: bool = False) -> list[Result]:
    per_thread = 5_000 if quick else 25_000
    repeats = 1 if quick else 3
    rates = _rates(
        {
            "ours": ours,
            "queue": stdlib_queue,
            "bounded": ours_bounded,
            "direct": stdlib_direct,
            "loguru": loguru_enqueue,
        },
        per_thread,
        repeats,
    )
    rate_ours, rate_queue, rate_bounded = rates["ours"], rates["queue"], rates["bounded"]
    rate_direct, rate_loguru = rates["direct"], rates["loguru"]
    lost_ours = lost_at_exit("ours", per_thread)
    lost_queue = lost_at_exit("stdlib", per_thread)
    return [
        Result(
            name=f"log throughput, {THREADS} threads -> file",
            unit="records/s",
            ours=rate_ours,
            peers={
                "QueueHandler+QueueListener": rate_queue,
                "FileHandler": rate_direct,
                "loguru enqueue=True": rate_loguru,
            },
            ratio=rate_ours / rate_queue,
            target=">= 3x the stdlib queue pair",
            note="ours writes JSON lines; the peers a cheaper plain format line",
        ),
        Result(
            name=f"log throughput with max_queue=10,000, {THREADS} threads -> file",
            unit="records/s",
            ours=rate_bounded,
            peers={"QueueHandler+QueueListener": rate_queue, "bgservices unbounded": rate_ours},
            ratio=rate_bounded / rate_queue,
            target=">= 3x the stdlib queue pair, about the unbounded figure",
            note="the bound is a size check on the queue, not a per-record semaphore",
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
