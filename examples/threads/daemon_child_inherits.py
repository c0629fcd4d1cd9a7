"""A thread created by a daemon thread is a daemon too, unless told otherwise.

``Thread.__init__`` copies ``current_thread().daemon`` when ``daemon`` is not given. The
tutorial says threads are non-daemon "by default"; that holds only when the creator is
non-daemon. bgservices therefore always passes ``daemon=`` explicitly.
"""

import threading

results = {}


def parent() -> None:
    inherited = threading.Thread(target=lambda: None)
    explicit = threading.Thread(target=lambda: None, daemon=False)
    results["inherited"] = inherited.daemon
    results["explicit"] = explicit.daemon


spawner = threading.Thread(target=parent, daemon=True)
spawner.start()
spawner.join()
print(f"child of a daemon thread, daemon not given: daemon={results['inherited']}")
print(f"child of a daemon thread, daemon=False:     daemon={results['explicit']}")
