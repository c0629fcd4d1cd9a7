"""One of several processes writing one rotating log: ``shared_log_writer.py PATH THREADS N``.

Prints READY once its LogCollector runs, waits for a line on stdin (so every process starts
logging at once), logs N records from each of THREADS threads, stops and prints DONE.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from bgservices import Supervisor
from bgservices.services import LogCollector

path, threads, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
logger = logging.getLogger("shared")
logger.setLevel(logging.INFO)
collector = LogCollector(path=path, loggers=["shared"], max_bytes=20_000, backups=1000)
supervisor = Supervisor([collector], stop_at_exit=False)
supervisor.start()
print("READY", flush=True)
sys.stdin.readline()


def produce(thread: int) -> None:
    for n in range(count):
        logger.info("line %d %d %d %s", os.getpid(), thread, n, "x" * (n % 50))


workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
supervisor.stop()
print("DONE", collector.written, flush=True)
