"""Writing your own services: subclass ``Service`` or ``PeriodicService`` and declare options.

Run it: ``python examples/custom_service.py``
"""

from __future__ import annotations

import socket
import threading

from bgservices import ConfigError, PeriodicService, Service, Supervisor, option


class DiskWatcher(PeriodicService):
    """Daemon-safe: it only reads and reports."""

    daemon_safe = True
    interval = 0.05  # an inherited option's default, overridden by plain assignment
    path: str = option(default="/", help="Filesystem to watch.")
    min_free_percent: float = option(default=10.0, gt=0, lt=100, help="Warn below this.")

    def tick(self) -> None:
        import shutil

        usage = shutil.disk_usage(self.path)
        self.free_percent = 100 * usage.free / usage.total

    def stats(self) -> dict[str, float]:
        return {"free_percent": round(getattr(self, "free_percent", 0.0), 1)}


class EchoListener(Service):
    """Critical: it owns a socket that must be closed; blocked in accept() until stopped."""

    host: str = option(default="127.0.0.1")
    port: int = option(default=0, ge=0, le=65535)

    def setup(self) -> None:
        self.server = socket.create_server((self.host, self.port))
        self.listening = threading.Event()

    def run(self) -> None:
        self.listening.set()
        try:
            while True:
                conn, _ = self.server.accept()  # blocks: on_stop_requested unblocks it
                with conn:
                    conn.sendall(conn.recv(1024))
        except OSError:
            if not self.stopping:
                raise

    def on_stop_requested(self) -> None:
        # close() from another thread does not wake a blocked accept() on Linux; shutdown does.
        self.server.shutdown(socket.SHUT_RDWR)

    def teardown(self) -> None:
        self.server.close()
        print(f"{self.name}: socket closed, teardown done")


try:
    DiskWatcher(interval=-1, min_free=5)
except ConfigError as err:
    print(f"bad options, all reported at once:\n{err}")

watcher, echo = DiskWatcher(min_free_percent=5), EchoListener(name="echo")
with Supervisor([echo, watcher]) as sup:
    sup.wait_running(timeout=5)
    echo.listening.wait(5)
    with socket.create_connection(echo.server.getsockname()) as client:
        client.sendall(b"ping")
        print(f"echo replied {client.recv(1024)!r}")
    print(f"watcher daemon={watcher.daemon}, echo daemon={echo.daemon}")
print(f"after stop: {watcher.state.value}, {echo.state.value}")
