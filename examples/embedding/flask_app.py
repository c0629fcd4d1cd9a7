"""Flask: an app factory that owns a supervisor.

Flask has no shutdown hook; none is needed: when the process ends, the supervisor stops
itself before the interpreter joins threads, so critical teardown still runs.
Run it: ``flask --app flask_app run`` from this folder.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from bgservices import from_config

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

    @app.get("/health")
    def health() -> Any:
        return jsonify(healthy=sup.healthy, services=sup.status())

    return app
