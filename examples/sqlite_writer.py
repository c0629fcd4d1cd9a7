"""Never use a daemon thread for database writes: a critical service that commits everything.

The writer accepts rows from any thread, commits them in batches, and on every graceful exit
path (the main thread returning, ``sys.exit``, an unhandled exception, SIGTERM) its teardown
commits what is left. Run it: ``python examples/sqlite_writer.py [return|exit|raise|signal] [DB]``
"""

from __future__ import annotations

import queue
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path

from bgservices import Service, Supervisor, option


class SQLiteWriter(Service):
    """Critical (not daemon-safe): a row it accepted must reach the database."""

    path: str = option(help="Database file.")
    flush_every: float = option(default=0.5, gt=0, help="Seconds between commits.")

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.pending: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.accepted = self.committed = 0

    def write(self, text: str) -> None:
        self.pending.put(text)
        self.accepted += 1

    def setup(self) -> None:
        self.db = sqlite3.connect(self.path)
        self.db.execute("CREATE TABLE IF NOT EXISTS events (text TEXT)")

    def run(self) -> None:
        while not self.wait(self.flush_every):
            self.commit()

    def teardown(self) -> None:
        self.commit()
        self.db.close()
        print(f"teardown: committed {self.committed} of {self.accepted} rows", flush=True)

    def commit(self) -> None:
        rows = []
        while not self.pending.empty():
            rows.append((self.pending.get(),))
        with self.db:  # one transaction per batch
            self.db.executemany("INSERT INTO events VALUES (?)", rows)
        self.committed += len(rows)


mode = sys.argv[1] if len(sys.argv) > 1 else "return"
path = sys.argv[2] if len(sys.argv) > 2 else str(Path(tempfile.mkdtemp()) / "events.db")
writer = SQLiteWriter(path=path, flush_every=60)  # long interval: teardown does the work
sup = Supervisor([writer])


def produce() -> None:
    for n in range(1000):
        writer.write(f"event {n}")
    print("READY: 1000 rows accepted", flush=True)


if mode == "signal":
    threading.Thread(target=lambda: (sup.wait_running(5), produce())).start()
    sys.exit(sup.run())  # SIGTERM stops it gracefully
sup.start()
produce()
if mode == "exit":
    sys.exit(0)
if mode == "raise":
    raise RuntimeError("the application crashed")
