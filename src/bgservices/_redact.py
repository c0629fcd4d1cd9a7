"""Keep secrets out of logs, status and errors.

Three kinds of secret are recognised: URL credentials (``http://user:pw@host``), query
parameters whose name says secret (``?api_key=``, ``token=``, ``password=``, ``sig=`` ...), and
header values (Authorization, Cookie ...). URLs and ``name=value`` pairs are redacted by their
structure, so a password that also occurs elsewhere (``http://u:1@127.0.0.1``) never garbles
the rest of the text; a secret value is also scrubbed as a bare substring only when it is long
enough not to match innocent text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "is_secret_name",
    "redact_headers",
    "redact_text",
    "redact_url",
    "url_secrets",
]

REDACTED = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

#: Query parameter names that carry a secret: api_key, access_token, client_secret,
#: password, X-Amz-Signature, sig, auth, credential, session id ...
_SECRET_NAME = re.compile(
    r"(token|secret|passw|pwd|api[-_]?key|access[-_]?key|private[-_]?key|^key$|^sig$|signature"
    r"|^auth$|authorization|credential|session[-_]?id|^sid$)",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s'\"]*@")
_PAIR = re.compile(r"(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&;#\s'\")]*)")
#: Bare secrets shorter than this are not scrubbed from free text: "1" would hit every "1".
_MIN_BARE = 4


def is_secret_name(name: str) -> bool:
    """Whether a query parameter (or field) called *name* holds a secret."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``http://user:pw@host/x?token=t&a=1`` -> ``http://***@host/x?token=***&a=1``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url, [])
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, query=_redact_pairs(parts.query)))


def url_secrets(url: str) -> list[str]:
    """The secret parts of *url*, to scrub from any text that might quote them."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return []
    found = [s for s in (parts.username, parts.password) if s]
    found += [value for name, value in query if value and is_secret_name(name)]
    if parts.password and parts.username:
        found.append(f"{parts.username}:{parts.password}")
    return found


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def redact_text(text: str, secrets: list[str]) -> str:
    """Scrub URL credentials, secret ``name=value`` pairs, then each long-enough secret."""
    text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _redact_pairs(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_BARE:
            text = text.replace(secret, REDACTED)
    return text


def _redact_pairs(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if is_secret_name(match["name"]) and match["value"]:
            return f"{match['name']}={REDACTED}"
        return match[0]

    return _PAIR.sub(replace, text)
