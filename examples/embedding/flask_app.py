"""Flask: an app factory that owns a supervisor.

Flask has no shutdown hook; none is needed: when the process ends, the supervisor stops
itself before the interpreter joins threads, so critical teardown still runs.
Run it: ``flask --app flask_app run`` from this folder. The status surface is mounted at
``/bg`` (``/bg/livez``, ``/bg/readyz``, ``/bg/healthz``, ``/bg/metrics``, a page at ``/bg/``).

Logging is the one set-up Flask's documentation gives, done before the app is created; its
root handler prints bgservices' events (loggers ``bgservices.*``) with Flask's own lines.
``disable_existing_loggers`` must be False: bgservices' loggers exist once it is imported.
"""

from __future__ import annotations

from logging.config import dictConfig
from typing import Any

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bgservices import from_config
from bgservices.web import wsgi_app

dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"format": "[%(asctime)s] %(levelname)s in %(name)s: %(message)s"}
        },
        "handlers": {
            "wsgi": {
                "class": "logging.StreamHandler",
                "stream": "ext://flask.logging.wsgi_errors_stream",
                "formatter": "default",
            }
        },
        "root": {"level": "INFO", "handlers": ["wsgi"]},
    }
)

DEFAULT_SERVICES: dict[str, Any] = {
    "services": {
        "memory": {"type": "memory_monitor", "interval": 5},
    }
}


def create_app(services: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    sup = from_config(services or DEFAULT_SERVICES)
    sup.start()
    app.extensions["bgservices"] = sup
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/bg": wsgi_app(sup)})  # type: ignore[method-assign]

    @app.get("/health")
    def health() -> Any:
        healthy = sup.healthy
        return jsonify(healthy=healthy, services=sup.status()), 200 if healthy else 503

    return app
