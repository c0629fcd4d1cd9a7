"""Flask mounting the status surface at /bg (run under gunicorn by the tests)."""

from __future__ import annotations

from flask import Flask
from surface_services import build
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bgservices.web import wsgi_app

sup = build().start()  # in the worker: gunicorn imports the app after forking it

app = Flask(__name__)
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/bg": wsgi_app(sup)})  # type: ignore[method-assign]


@app.get("/")
def index() -> dict[str, str]:
    return {"app": "flask"}
