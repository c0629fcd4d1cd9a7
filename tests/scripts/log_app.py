"""8 threads x 5,000 records through a LogCollector, then exit: ``log_app.py MODE PATH``.

MODE: stop (explicit stop), return (main thread returns), exit (sys.exit(0)), sigterm
(``sup.run()`` stopped by SIGTERM after the app prints LOGGED).
"""

from __future__ import annotations

import logging
import sys
import threading

import structlog

from bgservices import Supervisor
from bgservices.services import LogCollector

mode, path = sys.argv[1], sys.argv[2]
THREADS, RECORDS = 8, 5000

logging.getLogger().setLevel(logging.INFO)
structlog.configure(
    processors=[
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
)
sup = Supervisor([LogCollector(path=path)], shutdown_timeout=5)


def produce(thread: int) -> None:
    log = logging.getLogger("app")
    for n in range(RECORDS):
        log.info("record %d %d", thread, n)


def produce_all() -> None:
    workers = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    structlog.get_logger("app.events").info("structured", thread="main", payload={"k": [1, 2]})
    print("LOGGED", flush=True)


if mode == "sigterm":
    threading.Thread(target=lambda: (sup.wait_running(10), produce_all())).start()
    sys.exit(sup.run())

sup.start()
produce_all()
if mode == "stop":
    sup.stop()
elif mode == "exit":
    sys.exit(0)
# "return": the main thread finishes with records still queued
