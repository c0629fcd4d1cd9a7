"""The graceful pattern: a stop event, signalled and joined, so cleanup always runs.

Waiting on the event (``stop.wait(1)``) instead of ``time.sleep(1)`` makes the thread notice
the stop at once rather than up to a second later. bgservices' critical services are this
pattern, with the signalling and joining done for you at every exit path.
"""

import threading
import time

stop = threading.Event()
working = threading.Event()


def graceful() -> None:
    working.set()
    try:
        while not stop.wait(1.0):  # wakes immediately when stop is set
            pass  # one round of periodic work
    finally:
        print("worker: cleanup ran")


worker = threading.Thread(target=graceful)
worker.start()
working.wait(5)
stop.set()
began = time.perf_counter()
worker.join()
print(f"main: joined {(time.perf_counter() - began) * 1000:.0f} ms after asking (not 1000)")
