"""A real redis-server per test that asks for one (``redis_server``), stopped after it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._redis_server import RedisServer, missing_reason


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a free 127.0.0.1 port, persistence off, in a temp dir.

    Without the binary the test is skipped with the reason, except under CI (``CI`` set),
    where it fails unless .ci/run reported that it could not install it.
    """
    reason = missing_reason()
    try:
        import redis  # noqa: F401
    except ImportError:
        reason = "redis-py is not installed (pip install -e '.[test]')"
    if reason is not None:
        if os.environ.get("CI") and not os.environ.get("BGSERVICES_NO_REDIS"):
            pytest.fail(f"{reason}, and CI must run the Redis tests")
        pytest.skip(reason)
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
