"""``KeepAlive``: ping a URL over one reused connection, and tell when it goes down or up."""

from __future__ import annotations

import enum
import socket
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .._redact import redact_headers, redact_text, redact_url, url_secrets
from ..errors import Problem
from ..health import HealthCheck
from ..options import option
from ..periodic import PeriodicService

if TYPE_CHECKING:
    import requests

__all__ = ["Health", "KeepAlive"]


class Health(enum.StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class KeepAlive(PeriodicService):
    """Pings ``url`` every ``interval`` with one ``requests.Session`` and tracks UP/DOWN.

    Daemon-safe: a ping holds no state worth saving; an interrupted one is simply not sent.
    The session's connection is reused from ping to ping, and ``keep_alive.session`` lets the
    application's own requests ride the same warm connection. DOWN after
    ``failure_threshold`` failures in a row, UP again after one success; ``on_down`` and
    ``on_up`` (on recovery from DOWN) are called once per transition. Credentials in the URL
    and Authorization/Cookie headers never appear in logs or status.
    """

    type_name = "keep_alive"

    daemon_safe = True
    interval = 30.0

    url: str = option(help="The URL to ping (http or https).")
    method: Literal["HEAD", "GET"] = option("HEAD", help="HTTP method of the ping.")
    timeout: float = option(5.0, gt=0, help="Seconds before a ping fails (always set).")
    expected_status: list[int] | None = option(
        None, help="Statuses that count as up; 2xx and 3xx by default."
    )
    headers: dict[str, str] = option({}, help="Extra request headers (secret ones redacted).")
    verify: bool = option(True, help="Verify TLS certificates.")
    failure_threshold: int = option(3, ge=1, help="Failures in a row before DOWN.")
    down_backoff: bool = option(
        False, help="While DOWN, probe at doubling intervals (up to 8 x interval)."
    )
    on_down: Callable[[KeepAlive], Any] | None = option(None, help="Called once on going DOWN.")
    on_up: Callable[[KeepAlive], Any] | None = option(None, help="Called once on recovering.")
    latency_window: int = option(100, ge=1, help="Pings the latency figures are taken over.")
    tcp_keepalive: bool = option(True, help="Set TCP keepalive on the connection.")

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        problems = super().check_options(values)
        url = values.get("url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            problems.append(
                Problem("url", f"must start with http:// or https:// (got {redact_url(url)!r})")
            )
        return problems

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()
        self._secrets = url_secrets(self.url) + [
            v for k, v in self.headers.items() if redact_headers({k: v})[k] != v
        ]

    def init_state(self) -> None:
        super().init_state()
        self.health = Health.UNKNOWN
        self.probes = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self._latencies: deque[float] = deque(maxlen=self.latency_window)
        self._skip_until = 0.0

    def check_health(self) -> HealthCheck | None:
        """Failing while the target is DOWN."""
        if self.health is Health.DOWN:
            reason = f"{redact_url(self.url)} is down: {self.last_failure}"
            return HealthCheck.failing(redact_text(reason, self._secrets))
        return None

    @property
    def ready(self) -> bool:
        """Ready after the first successful ping (the target was UP at least once)."""
        return super().ready and bool(self._latencies)  # a latency is kept per success

    @property
    def session(self) -> requests.Session:
        """The pinging session; use it for your own requests to the same host."""
        with self._session_lock:
            if self._session is None:
                self._session = self._make_session()
            return self._session

    def _make_session(self) -> requests.Session:
        import requests

        session = requests.Session()
        session.headers.update(self.headers)
        session.verify = self.verify
        if self.tcp_keepalive:
            adapter = _keepalive_adapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        return session

    def setup(self) -> None:
        self.session  # noqa: B018 (create it in the service thread, before the first ping)

    def teardown(self) -> None:
        with self._session_lock:
            if self._session is not None:
                self._session.close()  # releases sockets; the session stays usable

    def tick(self) -> None:
        import requests

        now = time.monotonic()
        if now < self._skip_until:
            return
        self.probes += 1
        began = time.perf_counter()
        try:
            response = self.session.request(
                self.method, self.url, timeout=self.timeout, allow_redirects=False
            )
            response.content  # noqa: B018 (read the body so the connection returns to the pool)
            error = (
                None if self._expected(response.status_code) else f"status {response.status_code}"
            )
        except requests.RequestException as exc:
            error = redact_text(f"{type(exc).__name__}: {exc}", self._secrets)
        if error is None:
            self._latencies.append(time.perf_counter() - began)
            self._succeeded()
        else:
            self._failed(error, now)

    def _expected(self, status: int) -> bool:
        if self.expected_status is not None:
            return status in self.expected_status
        return 200 <= status < 400

    def _succeeded(self) -> None:
        self.consecutive_failures = 0
        self._skip_until = 0.0
        if self.health is not Health.UP:
            previous, self.health = self.health, Health.UP
            self._emit("keepalive.up", url=redact_url(self.url), previous=previous.value)
            if previous is Health.DOWN:
                self.call_safely(self.on_up, self, what="on_up")

    def _failed(self, error: str, now: float) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_failure = error
        if self.health is not Health.DOWN and self.consecutive_failures >= self.failure_threshold:
            self.health = Health.DOWN
            self._emit("keepalive.down", "warning", url=redact_url(self.url), error=error)
            self.call_safely(self.on_down, self, what="on_down")
        if self.health is Health.DOWN and self.down_backoff:
            beyond = self.consecutive_failures - self.failure_threshold
            self._skip_until = now + self.interval * (min(2**beyond, 8) - 1)

    def summary(self) -> str:
        """One line for status tables: health and the p95 latency."""
        p95 = self.stats().get("latency_p95")
        return f"health={self.health.value}" + (f" p95={p95 * 1000:.1f}ms" if p95 else "")

    def stats(self) -> dict[str, Any]:
        latencies = list(self._latencies)
        return {
            **super().stats(),
            "health": self.health.value,
            "url": redact_url(self.url),
            "headers": redact_headers(self.headers),
            "probes": self.probes,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "last_failure": self.last_failure,
            "latency_last": round(latencies[-1], 6) if latencies else None,
            "latency_mean": round(statistics.fmean(latencies), 6) if latencies else None,
            "latency_p95": round(_p95(latencies), 6) if latencies else None,
            "callback_errors": self.callback_errors,
        }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _keepalive_adapter() -> requests.adapters.HTTPAdapter:
    """An adapter whose sockets have TCP keepalive on, with the options the platform has."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection

    options = [*HTTPConnection.default_socket_options, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))

    class KeepAliveAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["socket_options"] = options
            super().init_poolmanager(*args, **kwargs)

    return KeepAliveAdapter()
