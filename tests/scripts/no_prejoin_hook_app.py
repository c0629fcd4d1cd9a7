"""The exit hook's fallback: an interpreter without ``threading._register_atexit``.

A daemon watcher thread waits for the main thread to finish and then stops the supervisor.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

del threading._register_atexit  # type: ignore[attr-defined]

from bgservices import Service, Supervisor  # noqa: E402  (imported after the hook is gone)

# The application's logging: bgservices' events (DEBUG and up) on stdout, one per line.
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")

out = Path(sys.argv[1])


class Writer(Service):
    def run(self) -> None:
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        (out / "teardown").write_text("flushed")


Supervisor([Writer()], shutdown_timeout=2.0).start()
print("READY", flush=True)
