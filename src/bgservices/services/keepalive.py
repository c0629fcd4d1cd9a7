"""``KeepAlive``: ping a URL over one reused connection, and tell when it goes down or up."""

from __future__ import annotations

import contextlib
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
    method: Literal["HEAD", "GET"] = option(default="HEAD", help="HTTP method of the ping.")
    timeout: float = option(default=5.0, gt=0, help="Seconds before a ping fails (always set).")
    expected_status: list[int] | None = option(
        default=None, help="Statuses that count as up; 2xx and 3xx by default."
    )
    headers: dict[str, str] = option(
        default={}, help="Extra request headers (secret ones redacted)."
    )
    verify: bool = option(default=True, help="Verify TLS certificates.")
    failure_threshold: int = option(default=3, ge=1, help="Failures in a row before DOWN.")
    down_backoff: bool = option(
        default=False, help="While DOWN, probe at doubling intervals (up to 8 x interval)."
    )
    on_down: Callable[[KeepAlive], Any] | None = option(
        default=None, help="Called once on going DOWN."
    )
    on_up: Callable[[KeepAlive], Any] | None = option(
        default=None, help="Called once on recovering."
    )
    latency_window: int = option(
        default=100, ge=1, help="Pings the latency figures are taken over."
    )
    tcp_keepalive: bool = option(default=True, help="Set TCP keepalive on the connection.")
    trust_env: bool = option(
        default=True, help="Read proxies and .netrc from the environment on every ping."
    )

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
        self._secrets = url_secrets(self.url) + [
            v for k, v in self.headers.items() if redact_headers({k: v})[k] != v
        ]
        # The URL as shown anywhere: a secret may also appear outside its place (a password
        # repeated in the path, a token in the fragment), where only redact_text finds it.
        self._shown_url = redact_text(redact_url(self.url), self._secrets)

    def init_state(self) -> None:
        super().init_state()
        # A fresh session per launch and in a forked child: a session's pooled sockets must
        # never be shared with another process (the parent's are simply dropped here).
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()  # guards _session: made once, by whoever asks first
        self._deadline: _Deadline | None = None
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
            return HealthCheck.failing(f"{self._shown_url} is down: {self.last_failure}")
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
        session.trust_env = self.trust_env
        adapter = _probe_adapter(self.tcp_keepalive)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def setup(self) -> None:
        self.session  # noqa: B018 (create it in the service thread, before the first ping)

    def on_stop_requested(self) -> None:
        """A stop cuts the probe in flight short: the connection is shut at once."""
        deadline = self._deadline
        if deadline is not None:
            deadline.expire()

    def teardown(self) -> None:
        with self._session_lock:
            if self._session is not None:
                self._session.close()  # releases sockets; the session stays usable

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._skip_until:
            return
        self.probes += 1
        began = time.perf_counter()
        error = self._probe()
        if self.stopping:
            return  # a probe cut short by a stop says nothing about the server
        if error is None:
            self._latencies.append(time.perf_counter() - began)
            self._succeeded()
        else:
            self._failed(error, now)

    def _probe(self) -> str | None:
        """One request; None if it went well, else why not (secrets redacted).

        ``timeout`` bounds the whole probe, not each socket operation: at the deadline a
        watchdog shuts the connection's socket, which ends even a read that a server keeps
        alive by trickling bytes. Any exception is a failed probe, never a failed tick.
        """
        deadline = self._deadline = _Deadline()
        timer = threading.Timer(self.timeout, deadline.expire)
        timer.name, timer.daemon = f"bgservices:{self.name}:deadline", True
        _current.deadline = deadline
        timer.start()
        if self.stopping:
            deadline.expire()
        try:
            response = self.session.request(
                self.method, self.url, timeout=self.timeout, allow_redirects=False
            )
            response.content  # noqa: B018 (read the body so the connection returns to the pool)
            status = response.status_code
            error = None if self._expected(status) else f"status {status}"
        except Exception as exc:
            error = f"{type(exc).__name__}: {_text(exc)}"
        finally:
            deadline.finish()
            timer.cancel()
            _current.deadline = None
        if deadline.expired:
            error = f"timed out: no complete answer within {self.timeout:g}s"
        return None if error is None else redact_text(error, self._secrets)

    def _expected(self, status: int) -> bool:
        if self.expected_status is not None:
            return status in self.expected_status
        return 200 <= status < 400

    def _succeeded(self) -> None:
        self.consecutive_failures = 0
        self._skip_until = 0.0
        if self.health is not Health.UP:
            previous, self.health = self.health, Health.UP
            self._emit("keepalive.up", url=self._shown_url, previous=previous.value)
            if previous is Health.DOWN:
                self.call_safely(self.on_up, self, what="on_up")

    def _failed(self, error: str, now: float) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_failure = error
        if self.health is not Health.DOWN and self.consecutive_failures >= self.failure_threshold:
            self.health = Health.DOWN
            self._emit("keepalive.down", "warning", url=self._shown_url, error=error)
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
            "url": self._shown_url,
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


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<str() failed>"


_current = threading.local()  # the probe deadline of the calling thread, if any


class _Deadline:
    """The deadline of one probe: past it, the connection in use is shut down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _connection, _done and expired
        self._connection: Any = None
        self._done = False
        self.expired = False

    def watch(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def expire(self) -> None:
        with self._lock:
            if not self._done:
                self.expired = True
                _shut(self._connection)

    def finish(self) -> None:
        with self._lock:
            self._done = True


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _watched(connection_class: type) -> type:
    """*connection_class*, reporting each request to the calling thread's probe deadline."""

    class Watched(connection_class):  # type: ignore[misc]
        def request(self, *args: Any, **kwargs: Any) -> Any:
            deadline: _Deadline | None = getattr(_current, "deadline", None)
            if deadline is not None:
                deadline.watch(self)
            return super().request(*args, **kwargs)

    return Watched


def _probe_adapter(tcp_keepalive: bool) -> requests.adapters.HTTPAdapter:
    """An adapter whose connections obey probe deadlines, with TCP keepalive if asked."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    options = [*HTTPConnection.default_socket_options]
    if tcp_keepalive:
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
            if hasattr(socket, name):
                options.append((socket.IPPROTO_TCP, getattr(socket, name), value))

    class Pool(HTTPConnectionPool):
        ConnectionCls = _watched(HTTPConnection)

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = _watched(HTTPSConnection)

    class ProbeAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["socket_options"] = options
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    return ProbeAdapter()
