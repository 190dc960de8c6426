"""Prometheus metrics of the console API, in a registry of the app's own.

Requests are labelled by route template (``/api/v1/alerts/{alert_id}``), never by raw path,
so an id in a URL cannot explode the series count. Gauges that live in the database (open
alerts) are read when Prometheus scrapes.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

router = APIRouter(tags=["health"])


class ConsoleMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ioc_console_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "ioc_console_request_seconds",
            "HTTP request duration",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.logins = Counter("ioc_console_logins", "Login attempts", ["outcome"], registry=r)
        self.ws_clients = Gauge(
            "ioc_console_ws_clients", "Websocket clients receiving changes", registry=r
        )
        self.ws_queued = Counter(
            "ioc_console_ws_changes_queued",
            "Changes queued for websocket clients (one per client a change is for)",
            registry=r,
        )
        self.ws_closed = Counter(
            "ioc_console_ws_closed", "Websockets closed by the server", ["reason"], registry=r
        )
        self.ws_fanout = Histogram(
            "ioc_console_ws_fanout_seconds",
            "From a change reaching the API to its queueing for every client",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=r,
        )
        self.last_seq = Gauge(
            "ioc_console_last_change_seq", "Last alert change fanned out", registry=r
        )
        self.open_alerts = Gauge(
            "ioc_console_open_alerts", "Unresolved alerts", ["severity"], registry=r
        )

    def totals(self) -> dict[str, float]:
        """The headline numbers of a service status report: HTTP requests answered, open
        websockets, changes queued for them."""

        def value(metric: Counter | Gauge, name: str) -> float:
            """The sum over the metric's labels of its sample ``name``."""
            return sum(s.value for f in metric.collect() for s in f.samples if s.name == name)

        return {
            "requests": value(self.requests, "ioc_console_requests_total"),
            "ws_clients": value(self.ws_clients, "ioc_console_ws_clients"),
            "ws_changes_queued": value(self.ws_queued, "ioc_console_ws_changes_queued_total"),
        }


class RequestMetrics:
    """Pure ASGI middleware: count and time HTTP requests by route template."""

    def __init__(self, app: ASGIApp, metrics: ConsoleMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format. Public like /healthz: it holds counts, never alert content."""
    console: ConsoleMetrics = request.app.state.metrics
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT severity, count(*) AS n FROM alerts WHERE state <> 'resolved' GROUP BY 1"
        )
    console.open_alerts.clear()
    for row in rows:
        console.open_alerts.labels(row["severity"]).set(row["n"])
    return Response(generate_latest(console.registry), media_type=CONTENT_TYPE_LATEST)
