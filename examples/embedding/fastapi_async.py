"""FastAPI with async services: ``async with sup`` in the lifespan, no thread hand-offs.

Run it from this folder (needs fastapi, uvicorn and httpx):
``uvicorn fastapi_async:app --log-config uvicorn_logging.ini``.

``PriceWarmer`` is an ``AsyncPeriodicService``: it fetches ``PRICES_URL`` with one
``httpx.AsyncClient`` every ``PRICES_EVERY`` seconds, as a task on uvicorn's own event loop.
By default it reads this app's ``/upstream/prices`` (so the first fetch, made before uvicorn
listens, fails and is retried at the next tick). ``MemoryMonitor`` keeps its thread: thread
and async services share one supervisor, one start and one stop deadline.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException

from bgservices import AsyncPeriodicService, Supervisor, option
from bgservices.services import MemoryMonitor


class PriceWarmer(AsyncPeriodicService):
    """Keeps ``cache`` filled from a JSON endpoint; serves the last good copy on errors."""

    daemon_safe = True  # a lost fetch is fetched again at the next start
    url: str = option(help="JSON object of item -> price.")
    timeout: float = option(default=2.0, gt=0, help="Seconds per request.")

    def init_state(self) -> None:
        super().init_state()
        self.cache: dict[str, float] = {}

    async def setup(self) -> None:
        self.client = httpx.AsyncClient(timeout=self.timeout)

    async def tick(self) -> None:
        response = await self.client.get(self.url)
        response.raise_for_status()
        fresh = {str(item): float(price) for item, price in response.json().items()}
        if not self.cache:
            self.log.info("prices.warm", items=len(fresh))
        self.cache = fresh

    async def teardown(self) -> None:
        await self.client.aclose()
        self.log.info("prices.client_closed")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    prices = PriceWarmer(
        name="prices",
        url=os.environ.get("PRICES_URL", "http://127.0.0.1:8000/upstream/prices"),
        interval=float(os.environ.get("PRICES_EVERY", "5")),
    )
    sup = Supervisor([MemoryMonitor(name="memory", interval=5), prices])
    app.state.supervisor, app.state.prices = sup, prices
    async with sup:  # astart()/astop(): the loop keeps serving while threads start and stop
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/price/{item}")
async def price(item: str) -> dict[str, Any]:
    prices: PriceWarmer = app.state.prices
    if not prices.cache:
        raise HTTPException(503, "prices are not loaded yet")
    value = prices.cache.get(item)
    if value is None:
        raise HTTPException(404, f"no price for {item}")
    return {"item": item, "price": value}


@app.get("/upstream/prices")
async def upstream() -> dict[str, float]:
    """A stand-in for the real price service, so the example runs on its own."""
    return {"apple": 1.2, "pear": 0.8}


@app.get("/health")
async def health() -> dict[str, Any]:
    sup: Supervisor = app.state.supervisor
    return {"healthy": sup.healthy, "services": sup.status()}
