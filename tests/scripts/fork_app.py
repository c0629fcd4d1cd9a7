"""Fork with a running supervisor: the child restarts its own and exits cleanly."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

from bgservices import Service, ServiceState, Supervisor

# The application's logging: bgservices' events (DEBUG and up) on stdout, one per line.
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")

out = Path(sys.argv[1])
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a threaded process


class Writer(Service):
    def run(self) -> None:
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        (out / f"teardown-{os.getpid()}").write_text("ok")


svc = Writer()
sup = Supervisor([svc], shutdown_timeout=2.0)
sup.start()
assert sup.wait_running(5)

pid = os.fork()
if pid == 0:
    problems = []
    if svc.state is not ServiceState.STOPPED or sup.running:
        problems.append(f"child sees {svc.state} running={sup.running}")
    sup.start()
    if not sup.wait_running(5):
        problems.append("child could not start its supervisor again")
    if problems:
        print("\n".join(problems), flush=True)
        os._exit(1)
    print(f"CHILD {os.getpid()} running", flush=True)
    sys.exit(0)  # the child's own exit hook stops its supervisor

_, status = os.waitpid(pid, 0)
print(f"CHILD EXIT {os.waitstatus_to_exitcode(status)} {pid}", flush=True)
print(f"PARENT {sup.healthy}", flush=True)
