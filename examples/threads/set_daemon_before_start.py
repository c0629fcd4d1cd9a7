"""``daemon`` belongs to ``threading.Thread`` and must be set before ``start()``.

The tutorial calls it "the target function's daemon argument": it is ``Thread``'s argument
(or attribute). Setting it on a running thread raises ``RuntimeError``. Without it a thread
inherits the daemon flag of the thread that creates it: from the main thread that is False,
which is why threads look "non-daemon by default".
"""

import threading

ready = threading.Event()
thread = threading.Thread(target=ready.wait)
print(f"before start: daemon={thread.daemon}")
thread.daemon = True  # fine: not started yet
print(f"set before start: daemon={thread.daemon}")
thread.start()
try:
    thread.daemon = False
except RuntimeError as exc:
    print(f"set after start: RuntimeError: {exc}")
ready.set()
thread.join()
