"""Health and Prometheus metrics."""

from __future__ import annotations

import asyncpg
import pytest
from console_support import console, raise_alert, seed_registry
from prometheus_client.parser import text_string_to_metric_families

from console_api import Role
from store import StoreConfig

pytestmark = pytest.mark.postgres


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_health_and_metrics(database: StoreConfig, db: asyncpg.Connection) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    async with console(database, db) as c:
        operator = await c.user(Role.OPERATOR)
        async with c.http(operator) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            await http.get(f"/api/v1/alerts/{alert_id}")
            await http.get("/api/v1/alerts/00000000-0000-0000-0000-000000000000")
            async with c.live(operator):
                metrics = await http.get("/metrics")
                # What `ioc api` puts in its status report (the demo's board).
                totals = c.app.state.metrics.totals()
        samples = _samples(metrics.text)
        counted = sum(v for (name, _), v in samples.items() if name == "ioc_console_requests_total")
        # The /metrics request itself is counted once its answer is out: before or after.
        assert counted <= totals["requests"] <= counted + 1
        assert totals["ws_clients"] == samples[("ioc_console_ws_clients", ())] == 1
        assert metrics.headers["content-type"].startswith("text/plain")
        # Requests are labelled by route template, never by the id in the URL.
        route = "/api/v1/alerts/{alert_id}"
        assert (
            samples[
                (
                    "ioc_console_requests_total",
                    (("method", "GET"), ("route", route), ("status", "200")),
                )
            ]
            == 1
        )
        assert (
            samples[
                (
                    "ioc_console_requests_total",
                    (("method", "GET"), ("route", route), ("status", "404")),
                )
            ]
            == 1
        )
        assert samples[("ioc_console_logins_total", (("outcome", "accepted"),))] == 1
        assert samples[("ioc_console_open_alerts", (("severity", "major"),))] == 1
        assert samples[("ioc_console_ws_clients", ())] == 1
        assert not any(alert_id in name or alert_id in str(labels) for name, labels in samples)
