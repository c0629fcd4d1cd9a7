"""Cost of one keep-alive probe (a GET to a local HTTP/1.1 server on 127.0.0.1).

``KeepAlive.tick()`` called directly (the probe without the scheduling), at default settings
and with ``trust_env=False``, beside ``requests.get`` (a new connection per call), one
reused ``requests.Session`` and a bare ``http.client`` connection reused from call to call.
All talk to the same server, interleaved, median of several rounds; the server's own time
is in every figure.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable

import requests

from bgservices.services import KeepAlive

from ._common import Result, standalone
from .keepalive_connections import _Server


def _per_call_us(call: Callable[[], object], calls: int) -> float:
    call()  # warm: the connection is open and pooled
    began = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - began) / calls * 1e6


def run(quick: bool = False) -> list[Result]:
    rounds, calls = (3, 50) if quick else (5, 300)
    server = _Server()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/health"
    server.pings = threading.Semaphore(10**9)  # nobody waits on them here
    default = KeepAlive(url=url, method="GET")
    no_env = KeepAlive(url=url, method="GET", trust_env=False)
    session = requests.Session()
    bare = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def bare_get() -> None:
        bare.request("GET", "/health")
        bare.getresponse().read()

    contenders: dict[str, Callable[[], object]] = {
        "ours": default.tick,
        "ours, trust_env=False": no_env.tick,
        "requests.get (new connection)": lambda: requests.get(url, timeout=5).content,
        "requests.Session().get, reused": lambda: session.get(url, timeout=5).content,
        "http.client, reused connection": bare_get,
    }
    try:
        default.setup()
        no_env.setup()
        figures: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, call in contenders.items():
                figures[name].append(_per_call_us(call, calls))
        assert default.failures == 0 and no_env.failures == 0
    finally:
        default.teardown()
        no_env.teardown()
        session.close()
        bare.close()
        server.shutdown()
        server.server_close()
    medians = {name: statistics.median(v) for name, v in figures.items()}
    ours = medians.pop("ours")
    return [
        Result(
            name="one keep-alive probe (GET, 127.0.0.1)",
            unit="us",
            ours=ours,
            peers=medians,
            ratio=medians["requests.get (new connection)"] / ours,
            target="reported; ratio is requests.get / ours",
            note="the rest of a probe is requests' own per-request work (trust_env=False "
            "skips its proxy and .netrc lookups)",
        )
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
