"""Forecasts for planners and operators: the observed line, then the forecast band (80% and
95%) and the forecast's recent backtest error, as JSON or CSV (``store.forecasts``)."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response

from store import history as h
from store.forecasts import (
    Resolution,
    SeriesKey,
    SeriesKind,
    forecast_series,
    observed_hourly,
    read_anomalies,
    read_band,
    read_skill,
)

from ._bounds import LINE
from ._deps import AUTH_RESPONSES, History, ReadPool
from ._openapi import json_response

router = APIRouter(prefix="/api/v1/forecast", tags=["forecast"], responses=AUTH_RESPONSES)

Kind = Literal["line", "road", "district", "site"]
Format = Literal["json", "csv"]
STEP = {Resolution.HOUR: timedelta(hours=1), Resolution.DAY: timedelta(days=1)}
AHEAD = {Resolution.HOUR: timedelta(hours=48), Resolution.DAY: timedelta(days=14)}


class Observed(msgspec.Struct, frozen=True, array_like=True):
    t: datetime
    value: float | None


class Band(msgspec.Struct, frozen=True, kw_only=True):
    t: datetime
    value: float
    low80: float
    high80: float
    low95: float
    high95: float


class Skill(msgspec.Struct, frozen=True, kw_only=True):
    """The forecast's rolling-origin backtest: how far to trust it."""

    issued_at: datetime
    model: str
    fallback: str | None
    mae: float | None
    mape: float | None
    coverage_80: float | None
    coverage_95: float | None
    naive_mae: float | None
    skill_vs_naive: float | None
    points: int


class ForecastAnswer(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: str
    resolution: str
    timezone: str
    observed: list[Observed]
    forecast: list[Band]
    skill: Skill | None


class Anomaly(msgspec.Struct, frozen=True, kw_only=True):
    """One hour of an anomaly event: what was expected, its 95% band, what was observed."""

    event_id: str
    phase: str
    at: datetime
    kind: str
    id: str
    expected: float
    low95: float
    high95: float
    observed: float


class SeriesEntry(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: str


def _csv(answer: ForecastAnswer) -> Response:
    rows: dict[datetime, list[str]] = {}
    for o in answer.observed:
        rows.setdefault(o.t, [""] * 6)[0] = "" if o.value is None else f"{o.value:g}"
    for b in answer.forecast:
        rows.setdefault(b.t, [""] * 6)[1:] = [
            f"{v:.2f}" for v in (b.value, b.low80, b.high80, b.low95, b.high95)
        ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["time_utc", "observed", "forecast", "low80", "high80", "low95", "high95"])
    for t in sorted(rows):
        writer.writerow([t.astimezone(UTC).isoformat().replace("+00:00", "Z"), *rows[t]])
    name = f"forecast-{answer.kind}-{answer.id.replace('/', '_')}-{answer.resolution}"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("", response_model=None)
async def series_list(
    *, pool: ReadPool, who: History, resolution: Literal["hour", "day"] = "hour"
) -> Response:
    """Every series that has a forecast at this resolution."""
    async with pool.acquire() as conn:
        keys = await forecast_series(conn, Resolution(resolution))
    return json_response([SeriesEntry(kind=k.kind.value, id=k.id) for k in keys])


@router.get("/anomalies", response_model=None)
async def anomalies(
    *,
    pool: ReadPool,
    who: History,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 48,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """Anomaly events of the last ``hours`` (newest first) with expected and observed values:
    the numbers behind each ``traffic_anomaly`` / ``visitor_anomaly`` alert (same event id)."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    async with pool.acquire() as conn:
        found = await read_anomalies(conn, since, limit)
    return json_response(
        [
            Anomaly(
                event_id=a.event_id,
                phase=a.phase,
                at=a.at,
                kind=a.series_kind,
                id=a.series_id,
                expected=a.expected,
                low95=a.low95,
                high95=a.high95,
                observed=a.observed,
            )
            for a in found
        ]
    )


@router.get("/series", response_model=None)
async def series_forecast(
    *,
    pool: ReadPool,
    who: History,
    kind: Annotated[Kind, Query(description="What the series counts")],
    id: Annotated[
        str,
        Query(min_length=1, max_length=140, pattern=LINE, description="a line: camera/line"),
    ],
    resolution: Literal["hour", "day"] = "hour",
    observed_days: Annotated[int, Query(ge=1, le=60)] = 7,
    format: Format = "json",  # the query parameter's public name
) -> Response:
    """Observed values for the last ``observed_days``, then the newest forecast (48 hours or
    14 days) with 80% and 95% bands, and its backtest errors (MAE, MAPE, coverage, skill
    against the weekly seasonal-naive forecast)."""
    res = Resolution(resolution)
    key = SeriesKey(SeriesKind(kind), id)
    now = datetime.now(UTC)
    since = now - timedelta(days=observed_days)
    async with pool.acquire() as conn:
        skill = await read_skill(conn, key, res)
        if skill is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no forecast for {kind} {id!r}")
        period = h.Period.of(since, now, h.Bucket(res.value))
        observed = (await observed_hourly(conn, period)).get(key, {})
        band = await read_band(conn, key, res, period.start, now + AHEAD[res] + STEP[res])
    answer = ForecastAnswer(
        kind=kind,
        id=id,
        resolution=res.value,
        timezone="Asia/Ho_Chi_Minh",
        observed=[Observed(t, None if math.isnan(v) else v) for t, v in sorted(observed.items())],
        forecast=[
            Band(
                t=b.t, value=b.value, low80=b.low80, high80=b.high80, low95=b.low95, high95=b.high95
            )
            for b in band
        ],
        skill=Skill(**{f: getattr(skill, f) for f in Skill.__struct_fields__}),
    )
    return _csv(answer) if format == "csv" else json_response(answer)
