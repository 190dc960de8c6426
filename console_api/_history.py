"""Planners' history: traffic counts and Wi-Fi clients as JSON, CSV or a PNG chart.

Requests are bounded before anything is read: the span per bucket size (minutes for at most
two days, hours for a quarter, days for a year and a month) and the number of points
(series x buckets) in one answer.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ._bounds import Ids, TimeRange, invalid, time_range
from ._deps import AUTH_RESPONSES, History, Pool, Wifi
from ._history_source import (
    BUCKET_SIZE,
    Bucket,
    HistorySource,
    Series,
    TrafficGroup,
    TrafficQuery,
    WifiGroup,
    WifiMetric,
    WifiQuery,
)
from ._openapi import Responses, json_response
from ._render import to_csv, to_png

router = APIRouter(prefix="/api/v1/history", tags=["history"], responses=AUTH_RESPONSES)

MAX_SPAN: dict[Bucket, timedelta] = {
    "minute": timedelta(days=2),
    "hour": timedelta(days=92),
    "day": timedelta(days=400),
}
DEFAULT_SPAN: dict[Bucket, timedelta] = {
    "minute": timedelta(hours=6),
    "hour": timedelta(days=7),
    "day": timedelta(days=31),
}
MAX_POINTS = 250_000
Format = Literal["json", "csv", "png"]


class HistoryAnswer(msgspec.Struct, frozen=True, kw_only=True):
    metric: str
    bucket: Bucket
    group: str
    since: datetime
    until: datetime
    timezone: str
    series: list[Series]


def history_of(request: Request) -> HistorySource:
    source: HistorySource = request.app.state.history
    return source


Source = Annotated[HistorySource, Depends(history_of)]

_FORMATS: Responses = {
    200: {
        "description": "The series, in the requested format",
        "content": {
            "application/json": {"schema": msgspec.json.schema(HistoryAnswer)},
            "text/csv": {"schema": {"type": "string"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    422: {"description": "A parameter is out of bounds; the field is named"},
}


def _window(bucket: Bucket, since: datetime | None, until: datetime | None) -> TimeRange:
    return time_range(since, until, default_span=DEFAULT_SPAN[bucket], max_span=MAX_SPAN[bucket])


def check_points(series_count: int, window: TimeRange, bucket: Bucket) -> None:
    buckets = window.span / BUCKET_SIZE[bucket] + 1
    if series_count * buckets > MAX_POINTS:
        raise invalid(
            "bucket",
            f"{series_count} series x {buckets:.0f} buckets is over {MAX_POINTS} points: "
            "filter by camera, access point or district, group coarser, or use larger buckets",
        )


async def _answer(
    answer: HistoryAnswer, fmt: Format, *, title: str, ylabel: str, filename: str
) -> Response:
    if fmt == "csv":
        return Response(
            to_csv(answer.series, answer.metric),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    if fmt == "png":
        png = await asyncio.to_thread(to_png, answer.series, title=title, ylabel=ylabel)
        return Response(png, media_type="image/png")
    return json_response(answer)


@router.get("/traffic", responses=_FORMATS)
async def traffic(
    *,
    pool: Pool,
    source: Source,
    who: History,
    bucket: Bucket = "hour",
    since: Annotated[datetime | None, Query(description="Start (ISO 8601 with offset)")] = None,
    until: Annotated[datetime | None, Query(description="End, exclusive; default now")] = None,
    group: TrafficGroup = "line",
    camera: Annotated[Ids, Query(max_length=50, description="Camera ids (repeat)")] = None,
    district: Annotated[Ids, Query(max_length=20, description="District ids (repeat)")] = None,
    format: Format = "json",  # the query parameter's public name
) -> Response:
    """Vehicles counted crossing each counting line, per bucket, zeros where none."""
    window = _window(bucket, since, until)
    query = TrafficQuery(
        since=window.since,
        until=window.until,
        bucket=bucket,
        group=group,
        cameras=tuple(camera or ()),
        districts=tuple(district or ()),
    )
    async with pool.acquire() as conn:
        check_points(await source.traffic_series_count(conn, query), window, bucket)
        series = await source.traffic(conn, query)
    answer = HistoryAnswer(
        metric="vehicles",
        bucket=bucket,
        group=group,
        since=window.since,
        until=window.until,
        timezone="Asia/Ho_Chi_Minh",
        series=series,
    )
    return await _answer(
        answer,
        format,
        title=f"Vehicles per {bucket} by {group}",
        ylabel=f"vehicles / {bucket}",
        filename=f"traffic-{bucket}",
    )


@router.get("/wifi", responses=_FORMATS)
async def wifi(
    *,
    pool: Pool,
    source: Source,
    who: Wifi,
    bucket: Bucket = "hour",
    since: Annotated[datetime | None, Query(description="Start (ISO 8601 with offset)")] = None,
    until: Annotated[datetime | None, Query(description="End, exclusive; default now")] = None,
    metric: WifiMetric = "clients",
    group: WifiGroup = "ap",
    ap: Annotated[Ids, Query(max_length=50, description="Access point ids (repeat)")] = None,
    site: Annotated[Ids, Query(max_length=20, description="Site ids (repeat)")] = None,
    district: Annotated[Ids, Query(max_length=20, description="District ids (repeat)")] = None,
    format: Format = "json",  # the query parameter's public name
) -> Response:
    """Wi-Fi clients (mean per bucket, summed over the group's access points)."""
    window = _window(bucket, since, until)
    query = WifiQuery(
        since=window.since,
        until=window.until,
        bucket=bucket,
        metric=metric,
        group=group,
        access_points=tuple(ap or ()),
        sites=tuple(site or ()),
        districts=tuple(district or ()),
    )
    async with pool.acquire() as conn:
        check_points(await source.wifi_series_count(conn, query), window, bucket)
        series = await source.wifi(conn, query)
    answer = HistoryAnswer(
        metric=metric,
        bucket=bucket,
        group=group,
        since=window.since,
        until=window.until,
        timezone="Asia/Ho_Chi_Minh",
        series=series,
    )
    return await _answer(
        answer,
        format,
        title=f"Wi-Fi {metric} per {bucket} by {group}",
        ylabel=f"{metric} (mean)",
        filename=f"wifi-{metric}-{bucket}",
    )
