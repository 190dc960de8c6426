"""The console API application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from alerts import AlertFeed
from store import StoreConfig, create_pool

from . import _live, _routes


def create_app(store: StoreConfig) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await create_pool(store)
            stack.push_async_callback(pool.close)
            app.state.pool = pool
            app.state.feed = await stack.enter_async_context(AlertFeed(store))
            yield

    app = FastAPI(title="Province operations centre", version="0.1.0", lifespan=lifespan)
    app.include_router(_routes.router)
    app.include_router(_live.router)
    return app
