"""SIGTERM arrives while ``run()`` is still starting services: ``slow_start_app.py OUTDIR``."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from bgservices import Service, Supervisor

# The application's logging: bgservices' events (DEBUG and up) on stdout, one per line.
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")

out = Path(sys.argv[1])


class Writer(Service):
    def setup(self) -> None:
        if self.name == "slow":
            print("IN SETUP", flush=True)
            time.sleep(1)  # the signal lands in the main thread meanwhile
        if self.name == "later":
            (out / "setup-later").write_text("should not start")

    def run(self) -> None:
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        (out / f"teardown-{self.name}").write_text("ok")


sup = Supervisor([Writer(name="first"), Writer(name="slow"), Writer(name="later")])
sys.exit(sup.run())
