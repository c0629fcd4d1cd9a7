"""The status surface as plain functions of a supervisor: each returns a ``Response``.

The ASGI app, the WSGI app and the built-in ``status_server`` all serve these, so the three
mounts answer alike. Nothing here writes: every endpoint is a read-only snapshot.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..supervisor import Supervisor

__all__ = ["ROUTES", "Response", "handle", "healthz", "livez", "metrics", "page", "readyz"]

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_REFRESH_SECONDS = 5


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status code, content type and body."""

    status: int
    content_type: str
    body: bytes
    #: The Content-Length when it is not the body's: a HEAD answer gives GET's, no body.
    content_length: int | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        length = len(self.body) if self.content_length is None else self.content_length
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(length)),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]


def _json(status: int, data: object) -> Response:
    body = json.dumps(data, default=str, indent=2, sort_keys=False).encode()
    return Response(status, _JSON, body + b"\n")


def livez(supervisor: Supervisor) -> Response:
    """200 unless the supervisor is not running or a critical service is failing."""
    report = supervisor.health()
    live = report["phase"] == "running" and not report["failing"]
    return _json(200 if live else 503, {"live": live, "phase": report["phase"],
                                        "failing": report["failing"]})  # fmt: skip


def readyz(supervisor: Supervisor) -> Response:
    """200 when every service is ready, else 503 with the ones that are not."""
    report = supervisor.health()
    ready = bool(report["ready"])
    return _json(200 if ready else 503, {"ready": ready, "not_ready": report["not_ready"]})


def healthz(supervisor: Supervisor) -> Response:
    """The full health report; 503 unless healthy."""
    report = supervisor.health()
    return _json(200 if report["healthy"] else 503, report)


def status(supervisor: Supervisor) -> Response:
    """Every service's ``status()`` (secrets already redacted by the services)."""
    return _json(200, {"phase": supervisor.phase.value, "services": supervisor.status()})


def metrics(supervisor: Supervisor) -> Response:
    """Prometheus text exposition; 501 saying what to install without prometheus_client."""
    try:
        from .metrics import render
    except ImportError:
        message = (
            "metrics need prometheus_client: pip install 'bgservices[metrics]' "
            "(or pip install prometheus_client)\n"
        )
        return Response(501, _TEXT, message.encode())
    body, content_type = render(supervisor)
    return Response(200, content_type, body)


def page(supervisor: Supervisor) -> Response:
    """A small self-contained HTML page: one row per service; every string escaped."""
    report = supervisor.health()
    statuses = supervisor.status()
    rows = []
    for name, health in report["services"].items():
        status_ = statuses.get(name, {})
        error = status_.get("last_error") or {}
        last_error = f"{error.get('type', '')}: {error.get('message', '')}" if error else ""
        verdict = str(health["health"])
        cells = [
            f"<td>{_e(name)}</td>",
            f"<td>{_e(health['state'])}</td>",
            f'<td class="{_e(verdict)}">{_e(verdict)}</td>',
            f"<td>{'yes' if health['ready'] else 'no'}</td>",
            f"<td>{_e('; '.join(map(str, health['reasons'])))}</td>",
            f"<td>{_e(status_.get('restarts', ''))}</td>",
            f"<td>{_e(last_error)}</td>",
        ]
        rows.append(f'<tr data-service="{_e(name)}">{"".join(cells)}</tr>')
    overall = "healthy" if report["healthy"] else "unhealthy"
    body = _PAGE.format(
        refresh=_REFRESH_SECONDS,
        overall=overall,
        phase=_e(report["phase"]),
        ready="ready" if report["ready"] else "not ready",
        rows="\n".join(rows),
    )
    return Response(200, "text/html; charset=utf-8", body.encode())


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<title>bgservices: {overall}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
.ok {{ background: #d9f2d9; }} .degraded {{ background: #fff1c2; }}
.failing {{ background: #f8c9c9; font-weight: bold; }}
#overall.healthy {{ color: #1a7f1a; }} #overall.unhealthy {{ color: #b00020; }}
</style></head><body>
<h1>bgservices: <span id="overall" class="{overall}">{overall}</span></h1>
<p>Supervisor {phase}; {ready}. Refreshes every {refresh} s.</p>
<table id="services">
<tr><th>Service</th><th>State</th><th>Health</th><th>Ready</th><th>Reasons</th>
<th>Restarts</th><th>Last error</th></tr>
{rows}
</table></body></html>
"""

#: Path (relative to where the surface is mounted, without a trailing slash) -> endpoint.
ROUTES: dict[str, Callable[[Supervisor], Response]] = {
    "": page,
    "/livez": livez,
    "/readyz": readyz,
    "/healthz": healthz,
    "/status": status,
    "/metrics": metrics,
}


def handle(supervisor: Supervisor, method: str, path: str) -> Response:
    """Route one request; only GET and HEAD are served."""
    endpoint = ROUTES.get(path.rstrip("/"))
    if endpoint is None:
        return Response(404, _TEXT, b"not found\n")
    if method not in ("GET", "HEAD"):
        return Response(405, _TEXT, b"method not allowed\n")
    try:
        response = endpoint(supervisor)
    except Exception as exc:  # a broken status must not take the host application down
        return Response(500, _TEXT, f"error: {type(exc).__name__}\n".encode())
    if method == "HEAD":  # GET's headers, no body
        return replace(response, body=b"", content_length=len(response.body))
    return response
