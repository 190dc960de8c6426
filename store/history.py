"""History for planners: traffic, congestion, Wi-Fi use and visitors, from the rollups.

The same SQL runs on both store paths: the rollup relations (``traffic_1h``, ``wifi_1d``
...) are tables kept current by the writer on plain PostgreSQL and real-time continuous
aggregates on TimescaleDB, with the same columns. Every series is gap-filled: a camera,
line, road, access point, site or district of the registry gets a zero for a bucket
without data. Minute and hour buckets are UTC-aligned (the same in whole-hour zones); day
buckets are local days in :data:`store.LOCAL_TIMEZONE`.

Ranges are validated before any SQL runs (:class:`HistoryError` says what is wrong): aware
datetimes, start before end, and a span each bucket width can answer quickly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._period import (
    MAX_SPAN,
    MAX_TOP,
    VISITOR_SPAN,
    Bucket,
    HistoryError,
    Period,
    Ranking,
    TrafficGrouping,
    WifiGrouping,
)
from ._pool import Connection
from ._rollups import LOCAL_TIMEZONE

__all__ = [
    "MAX_SPAN",
    "MAX_TOP",
    "VISITOR_SPAN",
    "Bucket",
    "GroupTraffic",
    "HistoryError",
    "IntervalSpeeds",
    "LineTraffic",
    "Period",
    "Ranked",
    "Ranking",
    "RoadCongestion",
    "TrafficGrouping",
    "VisitorCount",
    "WifiGrouping",
    "WifiUsage",
    "busiest",
    "congestion_minutes",
    "distinct_visitors",
    "traffic_counts",
    "traffic_speeds",
    "traffic_totals",
    "wifi_usage",
]


def _buckets(width: Bucket) -> str:
    """SQL for every bucket start in [$1, $2)."""
    if width is Bucket.DAY:
        tz = LOCAL_TIMEZONE
        return (
            f"SELECT (d AT TIME ZONE '{tz}') AS b FROM generate_series("
            f"$1::timestamptz AT TIME ZONE '{tz}', "
            f"$2::timestamptz AT TIME ZONE '{tz}' - INTERVAL '1 day', INTERVAL '1 day') AS d"
        )
    step = f"INTERVAL '1 {width}'"
    return f"SELECT generate_series($1::timestamptz, $2::timestamptz - {step}, {step}) AS b"


def _rollup(prefix: str, width: Bucket) -> str:
    suffix = {Bucket.MINUTE: "1m", Bucket.HOUR: "1h", Bucket.DAY: "1d"}[width]
    return f"{prefix}_{suffix}"


@dataclass(frozen=True, slots=True)
class LineTraffic:
    camera_id: str
    line_id: str
    bucket: datetime
    forward: int
    backward: int


@dataclass(frozen=True, slots=True)
class GroupTraffic:
    group_id: str
    bucket: datetime
    vehicles: int


@dataclass(frozen=True, slots=True)
class RoadCongestion:
    road: str
    bucket: datetime
    minutes: int
    """Minutes in which at least one of the road's cameras was congested for 30 s or more."""


@dataclass(frozen=True, slots=True)
class WifiUsage:
    group_id: str
    bucket: datetime
    samples: int
    clients_avg: float
    """Sum over the group's APs of each AP's mean connected clients."""
    clients_peak: int
    """Sum over the group's APs of each AP's peak (an upper bound of the group's peak)."""
    up_ratio: float
    arrivals: int
    """Visitor hashes reported (new sightings), not distinct."""


@dataclass(frozen=True, slots=True)
class VisitorCount:
    group_id: str
    bucket: datetime
    visitors: int


@dataclass(frozen=True, slots=True)
class Ranked:
    id: str
    name: str
    total: int


async def traffic_counts(
    conn: Connection, period: Period, *, cameras: list[str] | None = None
) -> list[LineTraffic]:
    """Vehicles per camera, counting line and direction per bucket, zeros where none."""
    rollup = _rollup("traffic", period.bucket)
    rows = await conn.fetch(
        f"""WITH buckets AS ({_buckets(period.bucket)}),
        data AS (
            SELECT camera_id, line_id, bucket, forward, backward FROM {rollup}
            WHERE bucket >= $1 AND bucket < $2
              AND ($3::text[] IS NULL OR camera_id = ANY($3::text[]))),
        series AS (
            SELECT c.id AS camera_id, l.value->>'id' AS line_id
            FROM cameras c, jsonb_array_elements(c.lines) AS l
            WHERE $3::text[] IS NULL OR c.id = ANY($3::text[])
            UNION SELECT DISTINCT camera_id, line_id FROM data)
        SELECT s.camera_id, s.line_id, b.b AS bucket,
               coalesce(d.forward, 0)::bigint AS forward,
               coalesce(d.backward, 0)::bigint AS backward
        FROM series s CROSS JOIN buckets b
        LEFT JOIN data d
            ON d.camera_id = s.camera_id AND d.line_id = s.line_id AND d.bucket = b.b
        ORDER BY 1, 2, 3""",
        period.start,
        period.end,
        cameras,
    )
    return [LineTraffic(**r) for r in rows]


@dataclass(frozen=True, slots=True)
class IntervalSpeeds:
    camera_id: str
    interval_start: datetime
    seconds: float
    vehicles: int
    """Vehicles timed by the camera's speed gates in the interval."""
    mean_kmh: float
    p85_kmh: float
    """85th percentile of their speeds: what traffic engineers set limits by."""


async def traffic_speeds(
    conn: Connection, period: Period, *, cameras: list[str] | None = None
) -> list[IntervalSpeeds]:
    """Timed vehicles and their mean and 85th-percentile speed per camera and traffic-metrics
    interval, as the vision workers measured them (intervals that timed nobody have no
    row). Minute periods only (at most two days): a percentile cannot be merged from
    intervals into coarser buckets, so there is no rollup to read."""
    if period.bucket is not Bucket.MINUTE:
        raise HistoryError(
            f"speeds are kept per interval: ask in minute buckets, not {period.bucket}"
        )
    rows = await conn.fetch(
        """SELECT camera_id, ts AS interval_start, seconds, vehicles,
                  mean_kmh::float8 AS mean_kmh, p85_kmh::float8 AS p85_kmh
           FROM traffic_speeds
           WHERE ts >= $1 AND ts < $2 AND ($3::text[] IS NULL OR camera_id = ANY($3::text[]))
           ORDER BY camera_id, ts""",
        period.start,
        period.end,
        cameras,
    )
    return [IntervalSpeeds(**r) for r in rows]


def _totals_rollup(width: Bucket) -> str:
    return "traffic_1m" if width is Bucket.MINUTE else _rollup("vehicles", width)


async def traffic_totals(
    conn: Connection, period: Period, *, by: TrafficGrouping | str = TrafficGrouping.CAMERA
) -> list[GroupTraffic]:
    """Vehicles (both directions, all lines) per camera, road, district or the province.

    Roads and districts are those the registry gives each camera now; cameras and the
    province count every camera that reported, registered today or not."""
    grouping = TrafficGrouping(by)
    rollup = _totals_rollup(period.bucket)
    vehicles = "r.forward + r.backward" if period.bucket is Bucket.MINUTE else "r.vehicles"
    if grouping in (TrafficGrouping.ROAD, TrafficGrouping.DISTRICT):
        key = "c.road" if grouping is TrafficGrouping.ROAD else "c.district_id"
        groups = f"SELECT DISTINCT {key} AS key FROM cameras c WHERE {key} IS NOT NULL"
        source = f"{rollup} r JOIN cameras c ON c.id = r.camera_id"
        where = f" AND {key} IS NOT NULL"
    elif grouping is TrafficGrouping.CAMERA:
        key = "r.camera_id"
        groups = "SELECT id AS key FROM cameras UNION SELECT DISTINCT key FROM data"
        source, where = f"{rollup} r", ""
    else:
        key = "'province'::text"
        groups = "SELECT 'province'::text AS key"
        source, where = f"{rollup} r", ""
    rows = await conn.fetch(
        f"""WITH buckets AS ({_buckets(period.bucket)}),
        data AS (
            SELECT {key} AS key, r.bucket, sum({vehicles}) AS vehicles
            FROM {source}
            WHERE r.bucket >= $1 AND r.bucket < $2{where}
            GROUP BY 1, 2),
        groups AS ({groups})
        SELECT g.key AS group_id, b.b AS bucket, coalesce(d.vehicles, 0)::bigint AS vehicles
        FROM groups g CROSS JOIN buckets b
        LEFT JOIN data d ON d.key = g.key AND d.bucket = b.b
        ORDER BY 1, 2""",
        period.start,
        period.end,
    )
    return [GroupTraffic(**r) for r in rows]


async def congestion_minutes(
    conn: Connection, period: Period, *, roads: list[str] | None = None
) -> list[RoadCongestion]:
    """Congested minutes per road and bucket (from the 1-minute congestion rollup)."""
    outer = (
        f"date_trunc('day', r.bucket, '{LOCAL_TIMEZONE}')"
        if period.bucket is Bucket.DAY
        else f"date_trunc('{period.bucket}', r.bucket)"
    )
    rows = await conn.fetch(
        f"""WITH buckets AS ({_buckets(period.bucket)}),
        groups AS (
            SELECT DISTINCT road FROM cameras
            WHERE road IS NOT NULL AND ($3::text[] IS NULL OR road = ANY($3::text[]))),
        data AS (
            SELECT c.road, {outer} AS bucket, count(DISTINCT r.bucket) AS minutes
            FROM congestion_1m r JOIN cameras c ON c.id = r.camera_id
            WHERE r.bucket >= $1 AND r.bucket < $2 AND r.congested_s >= 30
              AND c.road IS NOT NULL AND ($3::text[] IS NULL OR c.road = ANY($3::text[]))
            GROUP BY 1, 2)
        SELECT g.road, b.b AS bucket, coalesce(d.minutes, 0)::bigint AS minutes
        FROM groups g CROSS JOIN buckets b
        LEFT JOIN data d ON d.road = g.road AND d.bucket = b.b
        ORDER BY 1, 2""",
        period.start,
        period.end,
        roads,
    )
    return [RoadCongestion(**r) for r in rows]


_WIFI_KEY = {
    WifiGrouping.ACCESS_POINT: "a.id",
    WifiGrouping.SITE: "a.site_id",
    WifiGrouping.DISTRICT: "a.district_id",
}


def _wifi_period(period: Period) -> None:
    if period.bucket is Bucket.MINUTE:
        raise HistoryError("Wi-Fi history has hour and day buckets, not minutes")


async def wifi_usage(
    conn: Connection, period: Period, *, by: WifiGrouping | str = WifiGrouping.SITE
) -> list[WifiUsage]:
    """Connected clients, availability and arrivals per AP, site or district."""
    _wifi_period(period)
    key = _WIFI_KEY[WifiGrouping(by)]
    rows = await conn.fetch(
        f"""WITH buckets AS ({_buckets(period.bucket)}),
        groups AS (SELECT DISTINCT {key} AS key FROM access_points a),
        data AS (
            SELECT {key} AS key, r.bucket, sum(r.samples) AS samples,
                   sum(r.clients_sum::numeric / r.samples) AS clients_avg,
                   sum(r.clients_max) AS clients_peak, sum(r.up_samples) AS up_samples,
                   sum(r.arrivals) AS arrivals
            FROM {_rollup("wifi", period.bucket)} r JOIN access_points a ON a.id = r.ap_id
            WHERE r.bucket >= $1 AND r.bucket < $2
            GROUP BY 1, 2)
        SELECT g.key AS group_id, b.b AS bucket,
               coalesce(d.samples, 0)::bigint AS samples,
               round(coalesce(d.clients_avg, 0)::numeric, 3)::float8 AS clients_avg,
               coalesce(d.clients_peak, 0)::bigint AS clients_peak,
               round(coalesce(d.up_samples::numeric / nullif(d.samples, 0), 0), 4)::float8
                   AS up_ratio,
               coalesce(d.arrivals, 0)::bigint AS arrivals
        FROM groups g CROSS JOIN buckets b
        LEFT JOIN data d ON d.key = g.key AND d.bucket = b.b
        ORDER BY 1, 2""",
        period.start,
        period.end,
    )
    return [WifiUsage(**r) for r in rows]


async def distinct_visitors(
    conn: Connection, period: Period, *, by: WifiGrouping | str = WifiGrouping.SITE
) -> list[VisitorCount]:
    """Distinct visitors (daily-rotated hashes) per AP, site or district per hour or day.

    A phone seen at two APs of a site counts once for the site. Hashes rotate at local
    midnight, so a day is the longest span over which "distinct" means one person."""
    _wifi_period(period)
    if period.end - period.start > VISITOR_SPAN:
        raise HistoryError(f"visitor counts cover at most {VISITOR_SPAN.days} days")
    key = _WIFI_KEY[WifiGrouping(by)]
    bucket = (
        f"date_trunc('day', v.hour, '{LOCAL_TIMEZONE}')"
        if period.bucket is Bucket.DAY
        else "v.hour"
    )
    rows = await conn.fetch(
        f"""WITH buckets AS ({_buckets(period.bucket)}),
        groups AS (SELECT DISTINCT {key} AS key FROM access_points a),
        data AS (
            SELECT {key} AS key, {bucket} AS bucket, count(DISTINCT v.visitor) AS visitors
            FROM wifi_visitors v JOIN access_points a ON a.id = v.ap_id
            WHERE v.hour >= $1 AND v.hour < $2
            GROUP BY 1, 2)
        SELECT g.key AS group_id, b.b AS bucket, coalesce(d.visitors, 0)::bigint AS visitors
        FROM groups g CROSS JOIN buckets b
        LEFT JOIN data d ON d.key = g.key AND d.bucket = b.b
        ORDER BY 1, 2""",
        period.start,
        period.end,
    )
    return [VisitorCount(**r) for r in rows]


_RANKINGS = {
    Ranking.CAMERAS: ("traffic", "c.id", "c.name", "cameras c ON c.id = r.camera_id"),
    Ranking.ROADS: ("traffic", "c.road", "c.road", "cameras c ON c.id = r.camera_id"),
    Ranking.DISTRICTS: (
        "traffic",
        "c.district_id",
        "(SELECT name FROM districts WHERE id = c.district_id)",
        "cameras c ON c.id = r.camera_id",
    ),
    Ranking.ACCESS_POINTS: ("wifi", "a.id", "a.name", "access_points a ON a.id = r.ap_id"),
    Ranking.SITES: (
        "wifi",
        "a.site_id",
        "(SELECT name FROM sites WHERE id = a.site_id)",
        "access_points a ON a.id = r.ap_id",
    ),
}


async def busiest(
    conn: Connection, period: Period, what: Ranking | str, *, limit: int = 10
) -> list[Ranked]:
    """The top ``limit`` by vehicles (cameras, roads, districts) or by Wi-Fi arrivals (APs,
    sites) over the period; ties in id order."""
    if not 1 <= limit <= MAX_TOP:
        raise HistoryError(f"limit must be between 1 and {MAX_TOP}, not {limit}")
    kind, key, name, join = _RANKINGS[Ranking(what)]
    if kind == "wifi":
        _wifi_period(period)
        measure, rollup = "r.arrivals", _rollup("wifi", period.bucket)
    elif period.bucket is Bucket.MINUTE:
        measure, rollup = "r.forward + r.backward", "traffic_1m"
    else:
        measure, rollup = "r.vehicles", _rollup("vehicles", period.bucket)
    rows = await conn.fetch(
        f"""SELECT {key} AS id, {name} AS name, sum({measure})::bigint AS total
        FROM {rollup} r JOIN {join}
        WHERE r.bucket >= $1 AND r.bucket < $2 AND {key} IS NOT NULL
        GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT $3""",
        period.start,
        period.end,
        limit,
    )
    return [Ranked(r["id"], r["name"] or r["id"], r["total"]) for r in rows]
