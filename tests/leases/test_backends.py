"""The lease backends on their own: a real lock file, a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bgservices.leases import FileLeaseBackend, HeldLease, RedisLeaseBackend

from .._process import until
from ._redis_server import RedisServer


def test_file_lease_is_exclusive_and_tokens_grow(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "x.lock")
    one, two = FileLeaseBackend(), FileLeaseBackend()
    first = one.acquire(path, 1.0)
    assert first is not None
    assert two.acquire(path, 1.0) is None  # flock: two descriptors conflict, even in one process
    assert one.renew(first, 1.0)
    one.release(first)
    second = two.acquire(path, 1.0)
    assert second is not None and second.token > first.token
    two.release(second)


def test_file_lease_whose_file_was_replaced_is_lost(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    backend = FileLeaseBackend()
    held = backend.acquire(path, 1.0)
    assert held is not None
    os.unlink(path)  # a second process could now lock a new file at the same path
    assert not backend.renew(held, 1.0)
    again = backend.acquire(path, 1.0)
    assert again is not None and again.token > held.token  # the time floor keeps tokens growing
    backend.release(held)
    backend.release(again)


def test_file_lease_is_dropped_by_the_kernel_when_its_holder_dies(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    code = (
        "import sys, time; from bgservices.leases import FileLeaseBackend\n"
        f"held = FileLeaseBackend().acquire({path!r}, 1.0)\n"
        "print(held.token, flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        token = int(child.stdout.readline())
        backend = FileLeaseBackend()
        assert backend.acquire(path, 1.0) is None
        child.kill()
        child.wait(10)
        held = backend.acquire(path, 1.0)
        assert held is not None and held.token > token
        backend.release(held)
    finally:
        child.kill()
        child.wait(10)


def test_redis_lease_is_exclusive_expires_and_tokens_grow(redis_server: RedisServer) -> None:
    one, two = RedisLeaseBackend(redis_server.url), RedisLeaseBackend(redis_server.url)
    try:
        first = one.acquire("job", 0.3)
        assert first is not None
        assert two.acquire("job", 0.3) is None
        assert one.renew(first, 0.3)
        assert until(lambda: two.acquire("job", 0.3) is not None)  # not renewed: it expires
        assert not one.renew(first, 0.3)  # the token check: no longer ours
        one.release(first)  # a no-op, not an error, and it must not free the new holder's lease
        assert one.acquire("job", 0.3) is None
        tokens = two.client.get("job:fence")
        assert tokens is not None and int(tokens) > first.token
    finally:
        one.close()
        two.close()


def test_redis_release_lets_the_next_holder_in_at_once(redis_server: RedisServer) -> None:
    one, two = RedisLeaseBackend(redis_server.url), RedisLeaseBackend(redis_server.url)
    try:
        first = one.acquire("job", 30.0)
        assert first is not None
        one.release(first)
        second = two.acquire("job", 30.0)
        assert second is not None and second.token > first.token
    finally:
        one.close()
        two.close()


def test_redis_tokens_keep_growing_after_redis_lost_its_data(redis_server: RedisServer) -> None:
    backend = RedisLeaseBackend(redis_server.url)
    try:
        tokens = []
        for _ in range(3):
            held = backend.acquire("job", 5.0)
            assert held is not None
            tokens.append(held.token)
            backend.release(held)
        redis_server.kill()
        redis_server.start()  # persistence is off: the fence counter is gone
        held = backend.acquire("job", 5.0)
        assert held is not None
        assert tokens == sorted(set(tokens)) and held.token > tokens[-1]
    finally:
        backend.close()


def test_an_unreachable_redis_raises_within_the_timeout(redis_server: RedisServer) -> None:
    backend = RedisLeaseBackend(redis_server.url, timeout=0.2)
    held = backend.acquire("job", 5.0)
    assert isinstance(held, HeldLease)
    redis_server.kill()
    began = time.monotonic()
    from redis.exceptions import ConnectionError as RedisConnectionError

    with pytest.raises(RedisConnectionError):
        backend.renew(held, 5.0)
    assert time.monotonic() - began < 2.0
    backend.close()


def test_without_redis_py_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from bgservices import Service\n"
        "class S(Service):\n"
        "    def run(self): pass\n"
        "s = S(lease={'url': 'redis://127.0.0.1:1/0', 'ttl': 1})\n"
        "from bgservices.leases import RedisLeaseBackend\n"
        "RedisLeaseBackend('redis://127.0.0.1:1/0')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "pip install 'bgservices[redis]'" in done.stderr


def test_threads_of_one_backend_do_not_share_tokens(redis_server: RedisServer) -> None:
    """thread_local=False: the renewer thread renews what the service thread acquired."""
    backend = RedisLeaseBackend(redis_server.url)
    held = backend.acquire("job", 5.0)
    assert held is not None
    renewed: list[bool] = []
    thread = threading.Thread(target=lambda: renewed.append(backend.renew(held, 5.0)))
    thread.start()
    thread.join(10)
    assert renewed == [True]
    backend.release(held)
    backend.close()
