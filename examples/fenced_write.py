"""Fencing: a store that refuses a late write from a holder that has lost its lease.

A lease bounds who *runs*, not when a write *lands*: a holder paused (GC, a slow disk, a
stopped VM) past its TTL may wake up and write after another has taken over. So pass
``self.lease.token`` with every write, and let the store keep the largest token it has seen
and refuse anything older. SQLite does it in one conditional UPDATE.

Run it: ``python examples/fenced_write.py [DB]``: a leased service writes its report under a
file lock, then a stale holder's late write is refused.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bgservices import PeriodicService, Supervisor


class FencedTable:
    """Rows written only with a fencing token at least as large as every earlier one."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS report (name TEXT PRIMARY KEY, value TEXT, token INTEGER)"
        )

    def write(self, name: str, value: str, token: int) -> bool:
        """Write *value* if *token* is not older than the row's; False if it was refused."""
        done = self.db.execute(
            "INSERT INTO report (name, value, token) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, token = excluded.token "
            "WHERE excluded.token >= report.token",
            (name, value, token),
        )
        return done.rowcount == 1

    def read(self, name: str) -> tuple[str, int] | None:
        row = self.db.execute("SELECT value, token FROM report WHERE name = ?", (name,)).fetchone()
        return None if row is None else (row[0], row[1])


class Reporter(PeriodicService):
    """Writes the daily report, once per host (a file lock) or fleet (a Redis lease)."""

    interval = 0.05

    def __init__(self, table: FencedTable, **options: object) -> None:
        super().__init__(**options)
        self.table = table

    def tick(self) -> None:
        assert self.lease is not None and self.lease.token is not None
        self.table.write("daily", f"written at {time.time():.3f}", self.lease.token)


def main(db: str, timeout: float = 10.0) -> None:
    table = FencedTable(db)
    lock = str(Path(db).with_suffix(".lock"))
    reporter = Reporter(table, lease={"path": lock})
    with Supervisor([reporter]):
        deadline = time.monotonic() + timeout
        while table.read("daily") is None:
            if time.monotonic() > deadline:  # a standby never writes: is the lock held?
                raise SystemExit(f"no report within {timeout} s: does another process hold {lock}?")
            time.sleep(0.01)
        assert reporter.lease is not None
        token = reporter.lease.token
    print(f"holder wrote with token {token}: {table.read('daily')}")
    assert token is not None
    stale = table.write("daily", "a late write from a paused holder", token - 1)
    print(f"a stale holder's write with token {token - 1}: {'accepted' if stale else 'refused'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(tempfile.mkdtemp()) / "report.db"))
