"""FastAPI mounting the status surface at /bg (run under uvicorn by the tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from surface_services import build

from bgservices.web import asgi_app

sup = build()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await anyio.to_thread.run_sync(sup.start)
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(sup.stop)


app = FastAPI(lifespan=lifespan)
app.mount("/bg", asgi_app(sup))


@app.get("/")
def index() -> dict[str, str]:
    return {"app": "fastapi"}
