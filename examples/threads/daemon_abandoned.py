"""A daemon thread is abandoned at exit: its ``finally`` block never runs.

When the last non-daemon thread (here, the main thread) finishes, the interpreter stops
without waiting for daemon threads. CPython does not raise anything inside them or unwind
their stacks: they simply stop being scheduled, so ``except``/``finally`` cleanup is skipped.
(The tutorial says the *main thread* decides; precisely, it is the last *non-daemon* thread.)
"""

import threading
import time

started = threading.Event()


def background() -> None:
    try:
        started.set()
        time.sleep(60)  # still sleeping when the program ends
    finally:
        print("daemon: finally ran")  # never printed


thread = threading.Thread(target=background, daemon=True)
thread.start()
started.wait()
print(f"main: daemon thread alive={thread.is_alive()}, exiting")
