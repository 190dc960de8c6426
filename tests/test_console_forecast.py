"""The forecast API: the observed line, the band and its backtest errors, as JSON and CSV,
for planners and operators (not police)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest
from console_support import console

from console_api import Role
from forecast import Calendar, Forecaster, from_observations
from forecast._store import write_forecast
from store import StoreConfig
from store.forecasts import Resolution, SeriesKey, SeriesKind

pytestmark = pytest.mark.postgres
SITE = SeriesKey(SeriesKind.SITE, "pier")


async def test_band_and_errors_as_json_and_csv(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = 24 * 7 * 6
    t = np.arange(hours)
    values = 50 + 40 * np.sin(2 * np.pi * (t % 24) / 24) + 3 * (t % 5)
    series = from_observations(
        [now - timedelta(hours=hours - i) for i in range(hours)], values.tolist()
    )
    fc = Forecaster(Calendar("VN")).forecast(series, 48)
    await write_forecast(db, SITE, Resolution.HOUR, fc, now)
    async with console(database, db) as c:
        async with await c.as_role(Role.PLANNER) as http:
            answer = await http.get(
                "/api/v1/forecast/series", params={"kind": "site", "id": "pier"}
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert len(body["forecast"]) == 48
            first = body["forecast"][0]
            assert (
                first["low95"]
                <= first["low80"]
                <= first["value"]
                <= first["high80"]
                <= first["high95"]
            )
            assert body["skill"]["model"] == fc.model
            assert body["skill"]["coverage_80"] is not None
            recent = await http.get("/api/v1/forecast/anomalies", params={"hours": 24})
            assert (recent.status_code, recent.json()) == (200, [])
            listed = await http.get("/api/v1/forecast")
            assert {"kind": "site", "id": "pier"} in listed.json()
            text = await http.get(
                "/api/v1/forecast/series", params={"kind": "site", "id": "pier", "format": "csv"}
            )
            lines = text.text.splitlines()
            assert lines[0] == "time_utc,observed,forecast,low80,high80,low95,high95"
            assert len(lines) == 49
            missing = await http.get(
                "/api/v1/forecast/series", params={"kind": "road", "id": "nowhere"}
            )
            assert missing.status_code == 404
        async with await c.as_role(Role.OPERATOR) as http:
            assert (
                await http.get("/api/v1/forecast/series", params={"kind": "site", "id": "pier"})
            ).status_code == 200
        async with await c.as_role(Role.POLICE) as http:
            assert (
                await http.get("/api/v1/forecast/series", params={"kind": "site", "id": "pier"})
            ).status_code == 403
