"""The status surface as a WSGI application, for Flask or Django.

Flask: ``app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/bg": wsgi_app(sup)})``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ._endpoints import handle

if TYPE_CHECKING:
    from ..supervisor import Supervisor

__all__ = ["wsgi_app"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def wsgi_app(supervisor: Supervisor) -> WSGIApp:
    """A WSGI app serving *supervisor*'s endpoints below where it is mounted (PATH_INFO)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        response = handle(
            supervisor, environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        )
        reason = HTTPStatus(response.status).phrase
        start_response(f"{response.status} {reason}", response.headers)
        return [response.body]

    return app
