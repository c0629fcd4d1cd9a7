"""A daemon and a non-daemon thread side by side.

The interpreter waits for the non-daemon thread before it exits, even though the main thread
has nothing left to do; the daemon thread is still mid-task at that point and is dropped.
"""

import threading
import time

daemon_started = threading.Event()


def non_daemon_task() -> None:
    daemon_started.wait()
    time.sleep(0.2)
    print("non-daemon: finished its work (the interpreter waited for it)")


def daemon_task() -> None:
    daemon_started.set()
    time.sleep(60)
    print("daemon: finished")  # never printed


threading.Thread(target=non_daemon_task).start()
threading.Thread(target=daemon_task, daemon=True).start()
print("main: returning without join()")
