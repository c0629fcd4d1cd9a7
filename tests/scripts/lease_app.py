"""A worker competing for a lease: ``python lease_app.py REDIS_URL TTL RETRY_INTERVAL``.

While it holds the lease it ticks every 10 ms, and each tick is a fenced write: a Lua script
appends ``token:pid`` to the list ``log`` only if the token is at least every token written
before (``fence``), else counts it in ``rejected``. While it runs (setup to teardown) its pid
is in the set ``running``. SIGTERM stops it cleanly (``Supervisor.run``).
"""

from __future__ import annotations

import os
import sys

import redis

from bgservices import PeriodicService, Supervisor

url, ttl, retry = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
client = redis.Redis.from_url(url)
fenced_append = client.register_script(
    """
    local seen = tonumber(redis.call('get', KEYS[1]) or '0')
    if tonumber(ARGV[1]) < seen then
        redis.call('incr', KEYS[3])
        return 0
    end
    redis.call('set', KEYS[1], ARGV[1])
    redis.call('rpush', KEYS[2], ARGV[1] .. ':' .. ARGV[2])
    return 1
    """
)
PID = str(os.getpid())


class Job(PeriodicService):
    interval = 0.01

    def setup(self) -> None:
        client.sadd("running", PID)

    def tick(self) -> None:
        assert self.lease is not None
        fenced_append(keys=["fence", "log", "rejected"], args=[self.lease.token, PID])

    def teardown(self) -> None:
        client.srem("running", PID)


lease = {"url": url, "key": "job", "ttl": ttl, "retry_interval": retry}
print("READY", flush=True)
sys.exit(Supervisor([Job(lease=lease)]).run())
