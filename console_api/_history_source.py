"""Where planners' history comes from: the one module to rewire when the store's history
queries land (phase 2: rollups, distinct visitors, congestion minutes).

Until then :class:`InterimHistory` answers from raw rows: traffic counts from the
``line_crossing`` events the alerts engine stores, Wi-Fi clients from ``wifi_samples``.
Both fill gaps with zeros from the registry (a line or access point that saw nothing still
has its series) and align days to local midnight in Asia/Ho_Chi_Minh. The request bounds in
``_history`` keep these scans to days or weeks, never years.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import asyncpg
import msgspec

from store import Connection

Bucket = Literal["minute", "hour", "day"]
TrafficGroup = Literal["line", "camera", "district"]
WifiGroup = Literal["ap", "site", "district"]
WifiMetric = Literal["clients"]
BUCKET_SIZE: dict[Bucket, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
# Buckets start at local midnight in Asia/Ho_Chi_Minh (UTC+7 all year, no DST since 1975).
ORIGIN = "2000-01-01T00:00:00+07:00"


class Point(msgspec.Struct, frozen=True, array_like=True):
    t: datetime
    value: float


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
class TrafficQuery:
    since: datetime
    until: datetime
    bucket: Bucket
    group: TrafficGroup = "line"
    cameras: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WifiQuery:
    since: datetime
    until: datetime
    bucket: Bucket
    metric: WifiMetric = "clients"
    group: WifiGroup = "ap"
    access_points: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()


class HistorySource(Protocol):
    """What the history endpoints need; the store's history module will provide it."""

    async def traffic(self, conn: Connection, query: TrafficQuery) -> list[Series]: ...

    async def wifi(self, conn: Connection, query: WifiQuery) -> list[Series]: ...

    async def traffic_series_count(self, conn: Connection, query: TrafficQuery) -> int:
        """How many series :meth:`traffic` would return, from the registry alone (cheap), so
        an oversized request is refused before it reads any data."""
        ...

    async def wifi_series_count(self, conn: Connection, query: WifiQuery) -> int: ...


_TRAFFIC_KEYS: dict[TrafficGroup, tuple[str, ...]] = {
    "line": ("camera_id", "line_id", "direction"),
    "camera": ("camera_id",),
    "district": ("district_id",),
}
_WIFI_KEYS: dict[WifiGroup, tuple[str, ...]] = {
    "ap": ("ap_id",),
    "site": ("site_id",),
    "district": ("district_id",),
}


def _series(records: list[asyncpg.Record], keys: tuple[str, ...]) -> list[Series]:
    """Rows ordered by key then time -> one series per key."""
    out: list[Series] = []
    current: tuple[str, ...] | None = None
    points: list[Point] = []
    for r in records:
        key = tuple(str(r[k]) for k in keys)
        if key != current:
            if current is not None:
                out.append(Series(key=dict(zip(keys, current, strict=True)), points=points))
            current, points = key, []
        points.append(Point(r["t"], float(r["value"])))
    if current is not None:
        out.append(Series(key=dict(zip(keys, current, strict=True)), points=points))
    return out


class InterimHistory:
    """History from raw rows, until the store's rollups are wired in (see module doc)."""

    async def traffic_series_count(self, conn: Connection, query: TrafficQuery) -> int:
        count = {
            "line": "2 * coalesce(sum(jsonb_array_length(lines)), 0)",
            "camera": "count(*)",
            "district": "count(DISTINCT district_id)",
        }[query.group]
        value: int = await conn.fetchval(
            f"""SELECT {count} FROM cameras
                WHERE jsonb_array_length(lines) > 0
                  AND (cardinality($1::text[]) = 0 OR id = ANY($1))
                  AND (cardinality($2::text[]) = 0 OR district_id = ANY($2))""",
            list(query.cameras),
            list(query.districts),
        )
        return value

    async def wifi_series_count(self, conn: Connection, query: WifiQuery) -> int:
        column = {"ap": "id", "site": "site_id", "district": "district_id"}[query.group]
        value: int = await conn.fetchval(
            f"""SELECT count(DISTINCT {column}) FROM access_points
                WHERE (cardinality($1::text[]) = 0 OR id = ANY($1))
                  AND (cardinality($2::text[]) = 0 OR site_id = ANY($2))
                  AND (cardinality($3::text[]) = 0 OR district_id = ANY($3))""",
            list(query.access_points),
            list(query.sites),
            list(query.districts),
        )
        return value

    async def traffic(self, conn: Connection, query: TrafficQuery) -> list[Series]:
        keys = _TRAFFIC_KEYS[query.group]
        key_list = ", ".join(keys)
        records = await conn.fetch(
            f"""
            WITH lanes AS (
                SELECT c.id AS camera_id, c.district_id, l->>'id' AS line_id, d.direction
                FROM cameras c
                CROSS JOIN LATERAL jsonb_array_elements(c.lines) AS l
                CROSS JOIN (VALUES ('forward'), ('backward')) AS d (direction)
                WHERE (cardinality($4::text[]) = 0 OR c.id = ANY($4))
                  AND (cardinality($5::text[]) = 0 OR c.district_id = ANY($5))
            ),
            buckets AS (
                SELECT generate_series(date_bin($3::interval, $1::timestamptz, $6::timestamptz),
                                       $2::timestamptz - interval '1 microsecond',
                                       $3::interval) AS t
            ),
            counts AS (
                SELECT e.camera_id, e.line_id, e.direction,
                       date_bin($3::interval, e.started_at, $6::timestamptz) AS t, count(*) AS n
                FROM events e JOIN lanes USING (camera_id, line_id, direction)
                WHERE e.kind = 'line_crossing' AND e.phase = 'instant'
                  AND e.started_at >= $1 AND e.started_at < $2
                GROUP BY 1, 2, 3, 4
            )
            SELECT {key_list}, b.t, sum(coalesce(c.n, 0)) AS value
            FROM lanes CROSS JOIN buckets b
            LEFT JOIN counts c USING (camera_id, line_id, direction, t)
            GROUP BY {key_list}, b.t
            ORDER BY {key_list}, b.t""",
            query.since,
            query.until,
            BUCKET_SIZE[query.bucket],
            list(query.cameras),
            list(query.districts),
            datetime.fromisoformat(ORIGIN),
        )
        return _series(list(records), keys)

    async def wifi(self, conn: Connection, query: WifiQuery) -> list[Series]:
        keys = _WIFI_KEYS[query.group]
        key_list = ", ".join(keys)
        # Mean clients per access point per bucket, summed over the group's access points.
        records = await conn.fetch(
            f"""
            WITH aps AS (
                SELECT id AS ap_id, site_id, district_id FROM access_points
                WHERE (cardinality($4::text[]) = 0 OR id = ANY($4))
                  AND (cardinality($5::text[]) = 0 OR site_id = ANY($5))
                  AND (cardinality($6::text[]) = 0 OR district_id = ANY($6))
            ),
            buckets AS (
                SELECT generate_series(date_bin($3::interval, $1::timestamptz, $7::timestamptz),
                                       $2::timestamptz - interval '1 microsecond',
                                       $3::interval) AS t
            ),
            means AS (
                SELECT w.ap_id, date_bin($3::interval, w.ts, $7::timestamptz) AS t,
                       avg(w.clients) AS n
                FROM wifi_samples w JOIN aps USING (ap_id)
                WHERE w.ts >= $1 AND w.ts < $2
                GROUP BY 1, 2
            )
            SELECT {key_list}, b.t, round(sum(coalesce(m.n, 0)), 2) AS value
            FROM aps CROSS JOIN buckets b
            LEFT JOIN means m USING (ap_id, t)
            GROUP BY {key_list}, b.t
            ORDER BY {key_list}, b.t""",
            query.since,
            query.until,
            BUCKET_SIZE[query.bucket],
            list(query.access_points),
            list(query.sites),
            list(query.districts),
            datetime.fromisoformat(ORIGIN),
        )
        return _series(list(records), keys)
