"""``bgservices demo``: every built-in service plus a critical SQLite writer, for a few seconds.

Everything runs on this machine: the keep-alive pings a small HTTP server the demo starts on
127.0.0.1, the log collector and the database write into a temporary directory. At the end
it prints what each service did at shutdown: critical ones drained and flushed (with counts
read back from disk), daemon-safe ones stopped within their grace or abandoned. The temporary
directory is removed at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import itertools
import queue
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ._console import LiveStatus, configure_logging, render_status, run_supervisor
from .options import option
from .periodic import PeriodicService
from .service import Service
from .services import CacheWarmer, KeepAlive, LogCollector, MemoryMonitor
from .supervisor import Supervisor


class _Health(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class HealthServer(Service):
    """The HTTP server the keep-alive pings. Daemon-safe: it holds no data."""

    daemon_safe = True
    server: Any = option(help="A bound ThreadingHTTPServer.")

    def run(self) -> None:
        self.server.serve_forever(poll_interval=0.1)

    def summary(self) -> str:
        return "listening on {}:{}".format(*self.server.server_address[:2])

    def on_stop_requested(self) -> None:
        self.server.shutdown()

    def teardown(self) -> None:
        self.server.server_close()


class OrderWriter(Service):
    """Critical: batches accepted orders into SQLite and commits every one of them on stop."""

    path: str = option(help="SQLite database file.")
    batch: int = option(default=50, ge=1, help="Rows per commit.")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._inbox: queue.SimpleQueue[tuple[int, float]] = queue.SimpleQueue()
        self.accepted = 0
        self.committed = 0

    def submit(self, order_id: int, amount: float) -> None:
        """Accept an order (any thread); it will be in the database after a graceful stop."""
        self._inbox.put((order_id, amount))
        self.accepted += 1

    def setup(self) -> None:
        self._db = sqlite3.connect(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, amount REAL)")

    def run(self) -> None:
        while not self.wait(0.2):
            self._commit()

    def teardown(self) -> None:
        self._commit()  # whatever was accepted before the stop
        self._db.close()

    def _commit(self) -> None:
        rows = []
        while True:
            try:
                rows.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        for start in range(0, len(rows), self.batch):
            with self._db:
                self._db.executemany(
                    "INSERT INTO orders VALUES (?, ?)", rows[start : start + self.batch]
                )
            self.committed += len(rows[start : start + self.batch])

    def stats(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "committed": self.committed}

    def summary(self) -> str:
        return f"accepted={self.accepted} committed={self.committed}"


class Shop(PeriodicService):
    """Daemon-safe traffic: submits an order every tick."""

    daemon_safe = True
    interval = 0.01
    writer: Any = option(help="The OrderWriter to submit to.")

    def setup(self) -> None:
        self._ids = itertools.count(1)

    def tick(self) -> None:
        self.writer.submit(next(self._ids), round(random.uniform(5, 500), 2))

    def summary(self) -> str:
        return f"orders={self.ticks}"


class ReportBuilder(PeriodicService):
    """Daemon-safe and slow: each report takes seconds, so at exit it is abandoned mid-way."""

    daemon_safe = True
    interval = 1.0

    def tick(self) -> None:
        time.sleep(30)  # an uninterruptible job: the daemon_grace cannot wait for it

    def summary(self) -> str:
        return "building a report (each takes 30 s)"


def build_demo(workdir: Path) -> tuple[Supervisor, dict[str, Service]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    writer = OrderWriter(name="orders", path=str(workdir / "orders.db"))
    catalogue = {f"product-{i}": {"price": i * 1.5} for i in range(100)}
    services: dict[str, Service] = {
        "logs": LogCollector(name="logs", path=str(workdir / "demo.log")),
        "http": HealthServer(name="http", server=server),
        "orders": writer,
        "shop": Shop(name="shop", writer=writer),
        "memory": MemoryMonitor(name="memory", interval=1.0),
        "warm": CacheWarmer(name="warm", interval=2.0, loader=lambda: catalogue),
        "ping": KeepAlive(name="ping", url=url, interval=0.5),
        "report": ReportBuilder(name="report"),
    }
    sup = Supervisor(services.values(), shutdown_timeout=5.0, daemon_grace=0.5)
    return sup, services


def run_demo(
    duration: float | None, status_every: float, log_level: str, log_format: str, *, keep: bool
) -> int:
    """Run the demo, print its shutdown report; remove its files unless *keep*."""
    workdir = Path(tempfile.mkdtemp(prefix="bgservices-demo-"))
    try:
        handler = configure_logging(log_level, log_format)  # type: ignore[arg-type]
        sup, services = build_demo(workdir)
        print(f"bgservices demo: {len(services)} services, for {duration or 'ever'} s")
        print("Ctrl-C stops it early; a second Ctrl-C exits at once.\n", flush=True)
        live = LiveStatus(sys.stdout)
        handler.live = live
        began = time.monotonic()
        code = run_supervisor(sup, duration, status_every, live)
        elapsed = time.monotonic() - began
        live.finish(render_status(sup))
        print(shutdown_summary(sup, services, workdir, elapsed), flush=True)
    finally:
        if keep:
            print(f"\nFiles kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


def shutdown_summary(
    sup: Supervisor, services: dict[str, Service], workdir: Path, elapsed: float
) -> str:
    report = sup.stop()  # already stopped: returns the report of that stop
    logs = services["logs"]
    orders = services["orders"]
    assert isinstance(logs, LogCollector) and isinstance(orders, OrderWriter)
    log_lines = len((workdir / "demo.log").read_text().splitlines())
    with sqlite3.connect(workdir / "orders.db") as db:
        rows = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    lines = [f"\nShutdown after {elapsed:.1f} s (stop took {report.elapsed * 1000:.0f} ms):"]
    for name, service in services.items():
        if name in report.abandoned:
            what = "abandoned mid-work after the grace: its teardown never ran (daemon-safe)"
        elif name == "logs":
            what = f"drained and flushed {logs.written} records; {log_lines} lines in demo.log"
        elif name == "orders":
            lost = orders.accepted - rows
            what = (
                f"committed {orders.committed} of {orders.accepted} orders; "
                f"{rows} rows in orders.db, {lost} lost"
            )
        elif service.daemon:
            what = "stopped within the grace (best effort: it might have been cut off)"
        else:
            what = "stopped and joined"
        kind = "daemon  " if service.daemon else "critical"
        lines.append(f"  {kind}  {name:<7} {what}")
    return "\n".join(lines)
