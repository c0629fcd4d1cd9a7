"""gunicorn: a supervisor per worker, started in ``post_fork``; the master runs no services.

Run it from this folder: ``gunicorn -c gunicorn.conf.py wsgi_app:app``. Threads do not
survive ``fork()``, so starting services in the master (or at import with ``--preload``)
would leave the workers without them: each worker starts its own after the fork.

``logconfig_dict`` is merged into gunicorn's default logging configuration: the root logger
on gunicorn's stderr handler prints bgservices' events (and the application's) in gunicorn's
format, next to its own lines, which propagate there instead of having their own handler.
"""

import os
import sys
import tempfile

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = 2
out_dir = os.environ.get("COUNTS_DIR", tempfile.gettempdir())
logconfig_dict = {
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "propagate": True},
        "gunicorn.access": {"level": "INFO", "propagate": True},
    },
}


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    import wsgi_app

    from bgservices import Supervisor

    wsgi_app.supervisor = Supervisor([wsgi_app.RequestCounter(name="counter", directory=out_dir)])
    wsgi_app.supervisor.start()
    print(f"worker {os.getpid()}: services running", file=sys.stderr, flush=True)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    import wsgi_app

    if wsgi_app.supervisor is not None:  # explicit; the exit hook would also do it
        wsgi_app.supervisor.stop()
