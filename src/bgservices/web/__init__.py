"""The status surface: liveness, readiness, health, status, metrics and a small HTML page.

One implementation (``_endpoints``), three mounts: ``asgi_app(supervisor)`` for
FastAPI/Starlette, ``wsgi_app(supervisor)`` for Flask/Django, and the built-in
``status_server`` service for applications without a web server.
"""

from __future__ import annotations

from .asgi import asgi_app
from .wsgi import wsgi_app

__all__ = ["asgi_app", "wsgi_app"]
