"""Fork while another thread holds the stack-size lock (starting a watchdog, or a launch with
``thread_stack_size``): the child, where that thread is gone, can still start a supervisor."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings

from bgservices import Service, Supervisor
from bgservices._thread_stack import default_stack

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a threaded process


class Idle(Service):
    def run(self) -> None:
        self.wait(30)


held, release = threading.Event(), threading.Event()


def hold() -> None:
    with default_stack():
        held.set()
        release.wait(30)


holder = threading.Thread(target=hold)
holder.start()
assert held.wait(5)
pid = os.fork()
if pid == 0:
    sup = Supervisor([Idle(name="idle")], stop_at_exit=False)
    sup.start()  # starts its health watchdog under that lock
    print("CHILD STARTED", flush=True)
    sup.stop()
    os._exit(0)
release.set()
holder.join(5)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print(f"CHILD EXIT {os.waitstatus_to_exitcode(status)}", flush=True)
        sys.exit(0)
    time.sleep(0.05)
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
print("CHILD HUNG", flush=True)
sys.exit(1)
