"""gunicorn with 4 workers, each running a leased CacheWarmer: one loads, all read.

``LEASE_URL`` (a Redis URL: the lease and a shared RedisCache) or ``LEASE_PATH`` (a file
lock: no server, each worker its own in-memory cache). Every load appends ``pid time`` to
``LOADS``.
"""

import os

bind = os.environ["BIND"]
workers = 4


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    import warmer_app

    warmer_app.start()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    import warmer_app

    warmer_app.stop()
