"""Planners' series from the store's history queries (``store.history``: rollups, gap-filled
from the registry, local days), shaped as labelled series for JSON, CSV and charts.

Each query also has a cost: the rows per bucket the store will produce for it, read from
the registry alone, so ``_history`` refuses an oversized request before any data is read.
Where a store query has no filter for what the planner asked (totals by road or district,
Wi-Fi groups), it answers every group and the filter applies here; the cost counts every
group, because the store reads them all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from store import Connection
from store import history as h

Bucket = Literal["minute", "hour", "day"]
TrafficGroup = Literal["line", "camera", "road", "district", "province"]
WifiGroup = Literal["ap", "site", "district"]
WifiMetric = Literal["clients", "peak_clients", "availability", "arrivals", "visitors"]
Ranking = Literal["cameras", "roads", "districts", "access_points", "sites"]
BUCKET_SIZE: dict[Bucket, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),  # local days; Asia/Ho_Chi_Minh keeps no daylight saving
}
WIFI_RANKINGS = frozenset({"access_points", "sites"})


class Point(msgspec.Struct, frozen=True, array_like=True):
    t: datetime
    value: int | float


class Series(msgspec.Struct, frozen=True, kw_only=True):
    key: dict[str, str]
    """What the series counts: e.g. {"camera_id": ..., "line_id": ..., "direction": ...}."""
    points: list[Point]

    @property
    def label(self) -> str:
        return " / ".join(self.key.values())

    @property
    def total(self) -> float:
        return sum(p.value for p in self.points)


@dataclass(frozen=True, slots=True)
class Places:
    """Which cameras, roads, access points, sites or districts a request is about; an empty
    tuple does not narrow."""

    cameras: tuple[str, ...] = ()
    roads: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    access_points: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()


def _keyed(rows: Iterable[tuple[dict[str, str], datetime, int | float]]) -> list[Series]:
    """(key, bucket, value) rows, in bucket order within each key -> series sorted by key."""
    points: dict[tuple[tuple[str, str], ...], list[Point]] = defaultdict(list)
    for key, t, value in rows:
        points[tuple(key.items())].append(Point(t, value))
    return [Series(key=dict(k), points=p) for k, p in sorted(points.items())]


_NAMED = {
    "camera_id": "cameras",
    "district_id": "districts",
    "site_id": "sites",
    "ap_id": "access_points",
}


async def display_labels(conn: Connection, series: Sequence[Series]) -> dict[str, str]:
    """Each series' label with the registry's names in place of ids (for chart legends)."""
    names: dict[tuple[str, str], str] = {}
    for field, table in _NAMED.items():
        ids = sorted({s.key[field] for s in series if field in s.key})
        if ids:
            rows = await conn.fetch(f"SELECT id, name FROM {table} WHERE id = ANY($1)", ids)
            names.update(((field, r["id"]), r["name"]) for r in rows)
    return {s.label: " / ".join(names.get((k, v), v) for k, v in s.key.items()) for s in series}


# --- traffic ------------------------------------------------------------------------------


async def _cameras(conn: Connection, places: Places) -> list[str] | None:
    """The cameras a line or camera request is about; None for all of them. Named cameras
    are taken as asked (one removed from the registry still has its history) unless a road
    or district narrows them, which only the registry knows."""
    if not (places.roads or places.districts):
        return list(places.cameras) or None
    rows = await conn.fetch(
        """SELECT id FROM cameras
           WHERE (cardinality($1::text[]) = 0 OR id = ANY($1))
             AND (cardinality($2::text[]) = 0 OR road = ANY($2))
             AND (cardinality($3::text[]) = 0 OR district_id = ANY($3))
           ORDER BY id""",
        list(places.cameras),
        list(places.roads),
        list(places.districts),
    )
    return [r["id"] for r in rows]


async def traffic_cost(conn: Connection, group: TrafficGroup, places: Places) -> int:
    if group == "province":
        return 1
    if group in ("road", "district"):
        column = "road" if group == "road" else "district_id"
        value: int = await conn.fetchval(f"SELECT count(DISTINCT {column}) FROM cameras")
        return value
    cameras = await _cameras(conn, places)
    if group == "camera" and cameras is None:
        value = await conn.fetchval("SELECT count(*) FROM cameras")
        return value
    row = await conn.fetchrow(
        """SELECT coalesce(sum(jsonb_array_length(lines)), 0) AS lines, count(*) AS known
           FROM cameras WHERE $1::text[] IS NULL OR id = ANY($1)""",
        cameras,
    )
    lines: int = row["lines"] if row else 0
    if cameras is not None and row is not None:
        # Named cameras the registry no longer has: count a line each (we cannot know more).
        lines += len(set(cameras)) - row["known"]
    return 2 * lines if group == "line" else lines


async def traffic(
    conn: Connection, period: h.Period, group: TrafficGroup, places: Places
) -> list[Series]:
    """Vehicles per counting line and direction, camera, road, district or the province."""
    if group in ("line", "camera"):
        cameras = await _cameras(conn, places)
        if cameras == []:
            return []
        if group == "camera" and cameras is None:
            return await _camera_totals(conn, period)
        rows = await h.traffic_counts(conn, period, cameras=cameras)
        if group == "line":
            return _keyed(
                (
                    {"camera_id": r.camera_id, "line_id": r.line_id, "direction": direction},
                    r.bucket,
                    value,
                )
                for r in rows
                for direction, value in (("backward", r.backward), ("forward", r.forward))
            )
        summed: dict[tuple[str, datetime], int] = defaultdict(int)
        for r in rows:
            summed[r.camera_id, r.bucket] += r.forward + r.backward
        return _keyed(({"camera_id": c}, t, v) for (c, t), v in summed.items())
    by = {"road": h.TrafficGrouping.ROAD, "district": h.TrafficGrouping.DISTRICT}.get(
        group, h.TrafficGrouping.PROVINCE
    )
    wanted = set(places.roads if group == "road" else places.districts)
    name = {"road": "road", "district": "district_id"}.get(group, "area")
    totals = await h.traffic_totals(conn, period, by=by)
    return _keyed(
        ({name: r.group_id}, r.bucket, r.vehicles)
        for r in totals
        if not wanted or r.group_id in wanted
    )


async def _camera_totals(conn: Connection, period: h.Period) -> list[Series]:
    """Every camera's vehicles: the store's per-camera totals, without the cameras that
    have no counting line and never counted anything (security cameras)."""
    counting = {
        r["id"]
        for r in await conn.fetch("SELECT id FROM cameras WHERE jsonb_array_length(lines) > 0")
    }
    totals = await h.traffic_totals(conn, period, by=h.TrafficGrouping.CAMERA)
    series = _keyed(({"camera_id": r.group_id}, r.bucket, r.vehicles) for r in totals)
    return [s for s in series if s.key["camera_id"] in counting or s.total > 0]


async def congestion_cost(conn: Connection, places: Places) -> int:
    value: int = await conn.fetchval(
        """SELECT count(DISTINCT road) FROM cameras
           WHERE cardinality($1::text[]) = 0 OR road = ANY($1)""",
        list(places.roads),
    )
    return value


async def congestion(conn: Connection, period: h.Period, places: Places) -> list[Series]:
    """Minutes in which at least one camera of the road was congested, per road."""
    rows = await h.congestion_minutes(conn, period, roads=list(places.roads) or None)
    return _keyed(({"road": r.road}, r.bucket, r.minutes) for r in rows)


# --- Wi-Fi --------------------------------------------------------------------------------

_WIFI_GROUPING = {
    "ap": h.WifiGrouping.ACCESS_POINT,
    "site": h.WifiGrouping.SITE,
    "district": h.WifiGrouping.DISTRICT,
}
_WIFI_KEY = {"ap": "ap_id", "site": "site_id", "district": "district_id"}


async def wifi_cost(conn: Connection, group: WifiGroup) -> int:
    column = {"ap": "id", "site": "site_id", "district": "district_id"}[group]
    value: int = await conn.fetchval(f"SELECT count(DISTINCT {column}) FROM access_points")
    return value


async def _wifi_groups(conn: Connection, group: WifiGroup, places: Places) -> set[str] | None:
    """The group ids the places narrow to (from the registry's access points); None: all."""
    if not (places.access_points or places.sites or places.districts):
        return None
    column = {"ap": "id", "site": "site_id", "district": "district_id"}[group]
    rows = await conn.fetch(
        f"""SELECT DISTINCT {column} AS id FROM access_points
            WHERE (cardinality($1::text[]) = 0 OR id = ANY($1))
              AND (cardinality($2::text[]) = 0 OR site_id = ANY($2))
              AND (cardinality($3::text[]) = 0 OR district_id = ANY($3))""",
        list(places.access_points),
        list(places.sites),
        list(places.districts),
    )
    return {r["id"] for r in rows}


async def wifi(
    conn: Connection, period: h.Period, metric: WifiMetric, group: WifiGroup, places: Places
) -> list[Series]:
    """Clients (mean, summed over the group's APs), peak clients (sum of AP peaks),
    availability (share of samples up), arrivals (visitor hashes reported) or distinct
    visitors, per access point, site or district."""
    wanted = await _wifi_groups(conn, group, places)
    if wanted == set():
        return []
    key = _WIFI_KEY[group]
    by = _WIFI_GROUPING[group]
    rows: Iterable[tuple[dict[str, str], datetime, int | float]]
    if metric == "visitors":
        visitors = await h.distinct_visitors(conn, period, by=by)
        rows = (({key: r.group_id}, r.bucket, r.visitors) for r in visitors)
    else:
        usage = await h.wifi_usage(conn, period, by=by)
        rows = (({key: r.group_id}, r.bucket, _usage_value(r, metric)) for r in usage)
    return _keyed(row for row in rows if wanted is None or row[0][key] in wanted)


def _usage_value(row: h.WifiUsage, metric: WifiMetric) -> int | float:
    if metric == "clients":
        return row.clients_avg
    if metric == "peak_clients":
        return row.clients_peak
    if metric == "availability":
        return row.up_ratio
    return row.arrivals


# --- rankings -----------------------------------------------------------------------------


class Ranked(msgspec.Struct, frozen=True, kw_only=True):
    rank: int
    id: str
    name: str
    total: int


async def busiest(conn: Connection, period: h.Period, what: Ranking, limit: int) -> list[Ranked]:
    """The top ``limit`` by vehicles (cameras, roads, districts) or Wi-Fi arrivals (access
    points, sites) over the period; ties in id order."""
    top = await h.busiest(conn, period, h.Ranking(what), limit=limit)
    return [Ranked(rank=i, id=r.id, name=r.name, total=r.total) for i, r in enumerate(top, 1)]
