"""FastAPI: start the supervisor in the lifespan, stop it when the app shuts down.

Run it from this folder (needs fastapi and uvicorn):
``uvicorn fastapi_app:app --log-config uvicorn_logging.ini``. That file is uvicorn's own
default log configuration plus a ``root`` logger on uvicorn's handler, so bgservices' events
(and your application's) are printed beside uvicorn's, in its format.

The status surface is mounted at ``/bg``: ``/bg/livez`` and ``/bg/readyz`` for Kubernetes
probes, ``/bg/healthz``, ``/bg/metrics`` (with ``bgservices[metrics]``) and a page at ``/bg/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from bgservices import Supervisor
from bgservices.services import CacheWarmer, MemoryMonitor
from bgservices.web import asgi_app


def load_prices() -> dict[str, float]:
    return {"apple": 1.2, "pear": 0.8}


prices = CacheWarmer(name="prices", interval=60, loader=load_prices)
sup = Supervisor([MemoryMonitor(name="memory", interval=5), prices])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await anyio.to_thread.run_sync(sup.start)  # setup() may block: keep it off the event loop
    await anyio.to_thread.run_sync(prices.wait_ready, 10)  # serve nothing cold
    app.state.supervisor, app.state.prices = sup, prices
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(sup.stop)


app = FastAPI(lifespan=lifespan)
app.mount("/bg", asgi_app(sup))


@app.get("/price/{item}")
def price(item: str) -> dict[str, Any]:
    value = app.state.prices.cache.get(item)
    if value is None:
        raise HTTPException(404, f"no price for {item}")
    return {"item": item, "price": value}


@app.get("/health")
def health() -> JSONResponse:
    """The application's own health: 503 when a critical service is failing."""
    healthy = sup.healthy
    body = {"healthy": healthy, "services": sup.status()}
    return JSONResponse(body, status_code=200 if healthy else 503)
