"""The status surface as a plain ASGI application: ``app.mount("/bg", asgi_app(sup))``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._endpoints import handle

if TYPE_CHECKING:
    from ..supervisor import Supervisor

__all__ = ["asgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def asgi_app(supervisor: Supervisor) -> ASGIApp:
    """An ASGI app serving *supervisor*'s endpoints; no web framework needed.

    The endpoints only read in-memory figures (no I/O), so they answer inline on the event
    loop.
    """

    async def app(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        response = handle(supervisor, scope["method"], _relative_path(scope))
        headers = [(k.lower().encode(), v.encode()) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    return app


def _relative_path(scope: Scope) -> str:
    """The path below the mount point: Starlette keeps the full path and sets root_path."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"
