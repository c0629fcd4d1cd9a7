"""Keep secrets out of logs, status and errors."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "redact_headers",
    "redact_text",
    "redact_url",
    "url_secrets",
]

REDACTED = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def redact_url(url: str) -> str:
    """``http://user:pw@host/x`` -> ``http://***@host/x``; other URLs unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def url_secrets(url: str) -> list[str]:
    """The credential parts of *url*, to scrub from any text that might quote them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    return [s for s in (parts.username, parts.password) if s]


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
