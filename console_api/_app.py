"""The console API application: routers, middleware, and what lives as long as the app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response

from alerts import AlertFeed
from citizens import PUBLIC_PATHS as OPEN311_PATHS
from citizens import open311_router
from evidence import EvidenceCentre
from protocol import MqttEndpoint, Topics
from store import DB_ERRORS, StoreConfig, create_pool

from . import (
    _alerts,
    _cap_messages,
    _clips,
    _deps,
    _fiware,
    _forecast,
    _geo,
    _history,
    _incidents,
    _live,
    _metrics,
    _openapi,
    _page,
    _registry,
    _snapshots,
    _users,
)
from ._bounds import BodyLimit
from ._config import ConsoleConfig
from ._hub import ChangeHub
from ._internals import InternalsGate
from ._throttle import LoginFloodGate, LoginThrottle, PasswordHashing

PUBLIC_PATHS = (
    frozenset({"/api/v1/auth/token:POST", "/healthz:GET", "/metrics:GET", "/:GET", "/console/:GET"})
    | _clips.PUBLIC
    | OPEN311_PATHS
)
"""Routes anyone may call: log in, health, metrics, the page. Every other route has a role
gate; tests walk the app's routes and fail on one that has neither."""
FEED_CAPACITY = 100_000
"""The hub is the feed's only subscriber and drains it at once; a deep queue only guards
against a starved event loop."""


def create_app(
    store: StoreConfig,
    *,
    config: ConsoleConfig | None = None,
    mqtt: MqttEndpoint | None = None,
    topics: Topics | None = None,
    evidence: EvidenceCentre | None = None,
    read_store: StoreConfig | None = None,
) -> FastAPI:
    """The console app over ``store``. ``mqtt`` (optional) is the broker through which camera
    snapshots are asked of the edges; without it that one endpoint answers 503.
    ``read_store`` (optional) is a streaming replica for planners' history and forecasts."""
    config = config or ConsoleConfig()
    metrics = _metrics.ConsoleMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await create_pool(store)
            stack.push_async_callback(pool.close)
            app.state.pool = pool
            app.state.read_pool = pool
            if read_store is not None:
                app.state.read_pool = await create_pool(read_store)
                stack.push_async_callback(app.state.read_pool.close)
            app.state.hashing = await stack.enter_async_context(
                PasswordHashing(config.password_workers)
            )
            feed = await stack.enter_async_context(
                AlertFeed(store, subscriber_capacity=FEED_CAPACITY)
            )
            app.state.feed = feed
            app.state.hub = await stack.enter_async_context(ChangeHub(feed, metrics))
            app.state.snapshots = await stack.enter_async_context(
                _snapshots.CameraSnapshots(
                    mqtt,
                    topics,
                    timeout=config.snapshot_timeout,
                    ttl=config.snapshot_ttl,
                    width=config.snapshot_width,
                )
            )
            yield

    app = FastAPI(
        title="Province operations centre",
        version="0.1.0",
        description="Operators', police's, planners' and administrators' API; see docs/console.md.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.evidence = evidence  # None: the evidence endpoints answer 503
    app.state.metrics = metrics
    app.state.throttle = throttle = LoginThrottle(config.login_limits)
    for router in (
        _users.router,
        _alerts.router,
        _incidents.router,
        _cap_messages.router,
        _clips.router,
        _registry.router,
        _snapshots.router,
        _geo.router,
        _fiware.router,
        _history.router,
        _forecast.router,
        _metrics.router,
        _live.router,
        _page.router,
    ):
        app.include_router(router)
    app.include_router(open311_router(operators=_deps.LIVE, admins=_deps.ADMIN))
    app.add_api_route("/healthz", health, methods=["GET"], tags=["health"])
    for error in DB_ERRORS:  # the pool's acquire timeout (TimeoutError) among them
        app.add_exception_handler(error, store_unavailable)
    app.mount("/static", _page.static_files(), name="static")
    # Outermost first: metrics see every answer, including the body limit's 413.
    app.add_middleware(_page.PageHeaders, tiles_origin=config.map_tiles_origin)
    app.add_middleware(
        BodyLimit, limit=config.max_body_bytes, larger=[(_clips.UPLOADS, _clips.MAX_CHUNK)]
    )
    app.add_middleware(_metrics.RequestMetrics, metrics=metrics)
    app.add_middleware(InternalsGate, exposure=config.internals)
    app.add_middleware(LoginFloodGate, throttle=throttle, path="/api/v1/auth/token")
    _openapi.install(app)
    return app


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """503 with Retry-After when the store is away or every pooled connection stays busy
    past the acquire timeout: the client may try again, nothing else waits on it."""
    return JSONResponse(
        {"detail": f"the database is unavailable or busy ({type(exc).__name__}); try again"},
        status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


async def health(request: Request) -> dict[str, str]:
    """Ready when the database answers and live changes flow."""
    async with request.app.state.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    hub: ChangeHub = request.app.state.hub
    if not hub.alive:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "live change feed stopped")
    return {"status": "ok"}
