"""Planners' history: traffic, congestion, Wi-Fi use and visitors, and the busiest places,
each as JSON, CSV or a PNG chart, from the store's rollups (``_planner``).

Requests are bounded before anything is read: the span per bucket size (minutes for at most
two days, hours for a quarter, days for a year and a month) and the rows one answer may
take (groups the store reads x buckets).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import Field

from citizens import ReportDay, report_stats, stats_csv
from store import history as h

from . import _planner as planner
from ._bounds import LINE, Ids, TimeRange, invalid, time_range
from ._deps import AUTH_RESPONSES, WIFI, History, ReadPool, Wifi
from ._openapi import Responses, json_response
from ._planner import BUCKET_SIZE, Bucket, Places, Ranked, Series
from ._render import ranking_csv, to_bar_png, to_csv, to_png

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
_BUCKETS: dict[h.Bucket, Bucket] = {
    h.Bucket.MINUTE: "minute",
    h.Bucket.HOUR: "hour",
    h.Bucket.DAY: "day",
}
TIMEZONE = "Asia/Ho_Chi_Minh"
Format = Literal["json", "csv", "png"]
Since = Annotated[datetime | None, Query(description="Start (ISO 8601 with offset)")]
Until = Annotated[datetime | None, Query(description="End, exclusive; default now")]
Cameras = Annotated[Ids, Query(max_length=50, description="Camera ids (repeat)")]
Roads = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, pattern=LINE)]] | None,
    Query(max_length=50, description="Roads as the registry names them (repeat)"),
]
Districts = Annotated[Ids, Query(max_length=20, description="District ids (repeat)")]
AccessPoints = Annotated[Ids, Query(max_length=50, description="Access point ids (repeat)")]
Sites = Annotated[Ids, Query(max_length=50, description="Site ids (repeat)")]


class HistoryAnswer(msgspec.Struct, frozen=True, kw_only=True):
    metric: str
    bucket: Bucket
    group: str
    since: datetime
    until: datetime
    """The range answered: the request's, widened to whole buckets."""
    timezone: str
    series: list[Series]


class RankingAnswer(msgspec.Struct, frozen=True, kw_only=True):
    what: str
    measure: Literal["vehicles", "arrivals"]
    bucket: Bucket
    since: datetime
    until: datetime
    timezone: str
    ranking: list[Ranked]


def _formats(answer: type) -> Responses:
    return {
        200: {
            "description": "The answer, in the requested format",
            "content": {
                "application/json": {"schema": msgspec.json.schema(answer)},
                "text/csv": {"schema": {"type": "string"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        422: {"description": "A parameter is out of bounds; the field is named"},
    }


def period_of(bucket: Bucket, since: datetime | None, until: datetime | None) -> h.Period:
    """The validated range, widened to whole buckets (days: local midnights)."""
    window: TimeRange = time_range(
        since, until, default_span=DEFAULT_SPAN[bucket], max_span=MAX_SPAN[bucket]
    )
    try:
        return h.Period.of(window.since, window.until, h.Bucket(bucket))
    except h.HistoryError as exc:
        raise invalid("since", str(exc)) from exc


def check_points(series_count: int, period: h.Period, limit: int = MAX_POINTS) -> None:
    buckets = (period.end - period.start) / BUCKET_SIZE[_BUCKETS[period.bucket]]
    if series_count * buckets > limit:
        raise invalid(
            "bucket",
            f"{series_count} series x {buckets:.0f} buckets is over {limit} points: "
            "filter, group coarser, use larger buckets or a shorter range",
        )


def _not_for(group: str, **given: object) -> None:
    """Refuse filters that the grouping cannot apply, naming the first."""
    for name, value in given.items():
        if value:
            raise invalid(name, f"does not apply to group={group}")


async def _answer(
    pool: ReadPool, answer: HistoryAnswer, fmt: Format, *, title: str, ylabel: str, filename: str
) -> Response:
    if fmt == "csv":
        return _csv(to_csv(answer.series, answer.metric), filename)
    if fmt == "png":
        async with pool.acquire() as conn:
            labels = await planner.display_labels(conn, answer.series)
        png = await asyncio.to_thread(
            to_png, answer.series, title=title, ylabel=ylabel, labels=labels
        )
        return Response(png, media_type="image/png")
    return json_response(answer)


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


def _history(metric: str, group: str, period: h.Period, series: list[Series]) -> HistoryAnswer:
    return HistoryAnswer(
        metric=metric,
        bucket=_BUCKETS[period.bucket],
        group=group,
        since=period.start,
        until=period.end,
        timezone=TIMEZONE,
        series=series,
    )


@router.get("/traffic", responses=_formats(HistoryAnswer))
async def traffic(
    *,
    pool: ReadPool,
    who: History,
    bucket: Bucket = "hour",
    since: Since = None,
    until: Until = None,
    group: planner.TrafficGroup = "line",
    camera: Cameras = None,
    road: Roads = None,
    district: Districts = None,
    format: Format = "json",  # the query parameter's public name
) -> Response:
    """Vehicles counted per counting line and direction, camera, road, district or the
    whole province; zeros where none. ``camera``, ``road`` and ``district`` narrow lines
    and cameras; ``road`` narrows roads, ``district`` districts."""
    period = period_of(bucket, since, until)
    if group == "road":
        _not_for(group, camera=camera, district=district)
    elif group == "district":
        _not_for(group, camera=camera, road=road)
    elif group == "province":
        _not_for(group, camera=camera, road=road, district=district)
    places = Places(
        cameras=tuple(camera or ()), roads=tuple(road or ()), districts=tuple(district or ())
    )
    async with pool.acquire() as conn:
        check_points(await planner.traffic_cost(conn, group, places), period)
        series = await planner.traffic(conn, period, group, places)
    return await _answer(
        pool,
        _history("vehicles", group, period, series),
        format,
        title=f"Vehicles per {bucket} by {group}",
        ylabel=f"vehicles / {bucket}",
        filename=f"traffic-{group}-{bucket}",
    )


@router.get("/congestion", responses=_formats(HistoryAnswer))
async def congestion(
    *,
    pool: ReadPool,
    who: History,
    bucket: Bucket = "hour",
    since: Since = None,
    until: Until = None,
    road: Roads = None,
    format: Format = "json",  # the query parameter's public name
) -> Response:
    """Congestion minutes per road: minutes in which at least one of the road's cameras
    was congested for 30 s or more."""
    period = period_of(bucket, since, until)
    places = Places(roads=tuple(road or ()))
    async with pool.acquire() as conn:
        check_points(await planner.congestion_cost(conn, places), period)
        series = await planner.congestion(conn, period, places)
    return await _answer(
        pool,
        _history("congested_minutes", "road", period, series),
        format,
        title=f"Congested minutes per {bucket} by road",
        ylabel=f"minutes / {bucket}",
        filename=f"congestion-{bucket}",
    )


@router.get("/wifi", responses=_formats(HistoryAnswer))
async def wifi(
    *,
    pool: ReadPool,
    who: Wifi,
    bucket: Literal["hour", "day"] = "hour",
    since: Since = None,
    until: Until = None,
    metric: planner.WifiMetric = "clients",
    group: planner.WifiGroup = "ap",
    ap: AccessPoints = None,
    site: Sites = None,
    district: Districts = None,
    format: Format = "json",  # the query parameter's public name
) -> Response:
    """Wi-Fi per access point, site or district: ``clients`` (mean connected, summed over
    the group's APs), ``peak_clients`` (sum of the APs' peaks), ``availability`` (share of
    samples up), ``arrivals`` (visitor hashes reported) or ``visitors`` (distinct visitors;
    at most 35 days back, as long as the hashes are kept)."""
    period = period_of(bucket, since, until)
    if metric == "visitors" and period.end - period.start > h.VISITOR_SPAN:
        raise invalid("since", f"visitor counts cover at most {h.VISITOR_SPAN.days} days")
    places = Places(
        access_points=tuple(ap or ()), sites=tuple(site or ()), districts=tuple(district or ())
    )
    async with pool.acquire() as conn:
        check_points(await planner.wifi_cost(conn, group), period)
        series = await planner.wifi(conn, period, metric, group, places)
    return await _answer(
        pool,
        _history(metric, group, period, series),
        format,
        title=f"Wi-Fi {metric.replace('_', ' ')} per {bucket} by {group}",
        ylabel=metric.replace("_", " "),
        filename=f"wifi-{metric}-{group}-{bucket}",
    )


@router.get("/busiest", responses=_formats(RankingAnswer))
async def busiest(
    *,
    pool: ReadPool,
    who: History,
    what: planner.Ranking = "cameras",
    bucket: Bucket = "hour",
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=h.MAX_TOP)] = 10,
    format: Format = "json",  # the query parameter's public name
) -> Response:
    """The busiest cameras, roads or districts (vehicles) or access points and sites
    (Wi-Fi arrivals) over the range, busiest first; ``bucket`` picks the rollup read."""
    if what in planner.WIFI_RANKINGS and who.role not in WIFI.roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {who.role} may not see Wi-Fi data")
    if what in planner.WIFI_RANKINGS and bucket == "minute":
        raise invalid("bucket", "Wi-Fi history has hour and day buckets")
    period = period_of(bucket, since, until)
    async with pool.acquire() as conn:
        ranking = await planner.busiest(conn, period, what, limit)
    measure: Literal["vehicles", "arrivals"] = (
        "arrivals" if what in planner.WIFI_RANKINGS else "vehicles"
    )
    if format == "csv":
        return _csv(ranking_csv(ranking, measure), f"busiest-{what}")
    if format == "png":
        title = f"Busiest {what.replace('_', ' ')} by {measure}"
        png = await asyncio.to_thread(to_bar_png, ranking, title=title, xlabel=measure)
        return Response(png, media_type="image/png")
    return json_response(
        RankingAnswer(
            what=what,
            measure=measure,
            bucket=bucket,
            since=period.start,
            until=period.end,
            timezone=TIMEZONE,
            ranking=ranking,
        )
    )


class CitizenReportsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    since: datetime
    until: datetime
    timezone: str
    days: list[ReportDay]


@router.get("/citizen-reports", responses=_formats(CitizenReportsAnswer))
async def citizen_reports(
    *,
    pool: ReadPool,
    who: History,
    since: Since = None,
    until: Until = None,
    format: Literal["json", "csv"] = "json",  # the query parameter's public name
) -> Response:
    """Citizen reports (Open311, app and hotline) per service, district and local day: how
    many, how many closed, and the median minutes to close."""
    window = time_range(since, until, default_span=timedelta(days=31), max_span=MAX_SPAN["day"])
    async with pool.acquire() as conn:
        days = await report_stats(conn, window.since, window.until)
    if format == "csv":
        return _csv(stats_csv(days), "citizen-reports")
    return json_response(
        CitizenReportsAnswer(since=window.since, until=window.until, timezone=TIMEZONE, days=days)
    )
