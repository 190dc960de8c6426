"""The registry joined with the latest reported state of each camera and access point.

The latest-state tables (``camera_status``, ``ap_status``) are written by ingest from the
edges' retained state and telemetry. Where a deployment has not created them yet, the
registry is returned without state rather than failing: the console shows "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from store import Connection

from ._names import ZoneName, zone_name

_decode_shapes = msgspec.json.Decoder(list[dict[str, Any]])
STALE_AFTER = timedelta(seconds=90)
"""A state older than this is flagged stale: its edge has stopped reporting."""


class CameraLive(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["online", "offline", "degraded"]
    fps: float
    last_frame_at: datetime | None
    reported_at: datetime
    dropped_frames: int
    detail: str | None
    stale: bool


class CameraInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    kind: str
    district_id: str
    road: str | None
    lat: float
    lon: float
    fps: float
    state: CameraLive | None
    """None when no state was ever reported (or the deployment keeps none)."""
    site_id: str | None = None
    site_name: str | None = None
    """The tourist site the camera watches, if any."""
    zones: list[ZoneName] = []
    """Its zones, with a label in both languages for each."""
    lines: list[str] = []
    """The ids of its counting lines."""


class AccessPointLive(msgspec.Struct, frozen=True, kw_only=True):
    up: bool
    clients: int
    channel_util: float
    reported_at: datetime
    stale: bool


class AccessPointInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    site_id: str
    district_id: str
    lat: float
    lon: float
    capacity: int
    state: AccessPointLive | None
    site_name: str | None = None


class District(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    kind: str
    lat: float
    lon: float


async def has_table(conn: Connection, table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))


async def places(conn: Connection, ids: Iterable[str]) -> dict[str, tuple[float, float]]:
    """(lon, lat) of each id that is a camera, an access point or a citizen's report
    (``open311-{id}``, where it was reported): where an alert happens."""
    wanted = sorted(set(ids))
    reports = [
        int(i[8:])
        for i in wanted
        if i.startswith("open311-") and i[8:].isascii() and i[8:].isdigit() and len(i) < 26
    ]
    records = await conn.fetch(
        """SELECT id, lon, lat FROM cameras WHERE id = ANY($1::text[])
           UNION ALL SELECT id, lon, lat FROM access_points WHERE id = ANY($1::text[])
           UNION ALL SELECT 'open311-' || id, lon, lat FROM open311_requests
                     WHERE id = ANY($2::bigint[])""",
        wanted,
        reports,
    )
    return {r["id"]: (r["lon"], r["lat"]) for r in records}


async def districts(conn: Connection) -> list[District]:
    records = await conn.fetch("SELECT id, name, kind, lat, lon FROM districts ORDER BY id")
    return [District(**dict(r)) for r in records]


async def cameras(
    conn: Connection, *, ids: Sequence[str] = (), districts: Sequence[str] = ()
) -> list[CameraInfo]:
    with_state = await has_table(conn, "camera_status")
    state_columns = (
        "s.status, s.fps AS s_fps, s.last_frame_at, s.reported_at, s.dropped_frames, s.detail"
        if with_state
        else "NULL AS status"
    )
    join = "LEFT JOIN camera_status s ON s.camera_id = c.id" if with_state else ""
    records = await conn.fetch(
        f"""SELECT c.id, c.name, c.kind, c.district_id, c.road, c.lat, c.lon, c.fps,
                   c.site_id, site.name AS site_name, c.zones::text AS zones,
                   c.lines::text AS lines, {state_columns}, now() AS now
            FROM cameras c LEFT JOIN sites site ON site.id = c.site_id {join}
            WHERE (cardinality($1::text[]) = 0 OR c.id = ANY($1))
              AND (cardinality($2::text[]) = 0 OR c.district_id = ANY($2))
            ORDER BY c.id""",
        list(ids),
        list(districts),
    )
    result = []
    for r in records:
        state = None
        if r["status"] is not None:
            state = CameraLive(
                status=r["status"],
                fps=r["s_fps"],
                last_frame_at=r["last_frame_at"],
                reported_at=r["reported_at"],
                dropped_frames=r["dropped_frames"],
                detail=r["detail"],
                stale=r["now"] - r["reported_at"] > STALE_AFTER,
            )
        result.append(
            CameraInfo(
                id=r["id"],
                name=r["name"],
                kind=r["kind"],
                district_id=r["district_id"],
                road=r["road"],
                lat=r["lat"],
                lon=r["lon"],
                fps=r["fps"],
                state=state,
                site_id=r["site_id"],
                site_name=r["site_name"],
                zones=[zone_name(z) for z in _decode_shapes.decode(r["zones"])],
                lines=[str(ln.get("id")) for ln in _decode_shapes.decode(r["lines"])],
            )
        )
    return result


async def access_points(
    conn: Connection, *, ids: Sequence[str] = (), districts: Sequence[str] = ()
) -> list[AccessPointInfo]:
    with_state = await has_table(conn, "ap_status")
    state_columns = (
        "s.up, s.clients, s.channel_util, s.reported_at" if with_state else "NULL::bool AS up"
    )
    join = "LEFT JOIN ap_status s ON s.ap_id = a.id" if with_state else ""
    records = await conn.fetch(
        f"""SELECT a.id, a.name, a.site_id, a.district_id, a.lat, a.lon, a.capacity,
                   site.name AS site_name, {state_columns}, now() AS now
            FROM access_points a LEFT JOIN sites site ON site.id = a.site_id {join}
            WHERE (cardinality($1::text[]) = 0 OR a.id = ANY($1))
              AND (cardinality($2::text[]) = 0 OR a.district_id = ANY($2))
            ORDER BY a.id""",
        list(ids),
        list(districts),
    )
    result = []
    for r in records:
        state = None
        if r["up"] is not None:
            state = AccessPointLive(
                up=r["up"],
                clients=r["clients"],
                channel_util=r["channel_util"],
                reported_at=r["reported_at"],
                stale=r["now"] - r["reported_at"] > STALE_AFTER,
            )
        result.append(
            AccessPointInfo(
                id=r["id"],
                name=r["name"],
                site_id=r["site_id"],
                district_id=r["district_id"],
                lat=r["lat"],
                lon=r["lon"],
                capacity=r["capacity"],
                state=state,
                site_name=r["site_name"],
            )
        )
    return result


class DistrictSummary(msgspec.Struct, frozen=True, kw_only=True):
    district_id: str
    name: str
    cameras: int
    cameras_online: int
    access_points: int
    access_points_up: int
    wifi_clients: int
    open_alerts: int
    open_alerts_by_severity: dict[str, int]


async def district_summaries(conn: Connection) -> list[DistrictSummary]:
    """Counts per district for the operations room's overview."""
    cams = await cameras(conn)
    aps = await access_points(conn)
    records = await conn.fetch(
        """SELECT district_id, severity, count(*) AS n FROM alerts
           WHERE state <> 'resolved' GROUP BY district_id, severity"""
    )
    by_severity: dict[str, dict[str, int]] = {}
    for r in records:
        by_severity.setdefault(r["district_id"], {})[r["severity"]] = r["n"]
    summaries = []
    for d in await districts(conn):
        d_cams = [c for c in cams if c.district_id == d.id]
        d_aps = [a for a in aps if a.district_id == d.id]
        severities = by_severity.get(d.id, {})
        summaries.append(
            DistrictSummary(
                district_id=d.id,
                name=d.name,
                cameras=len(d_cams),
                cameras_online=sum(
                    1
                    for c in d_cams
                    if c.state and c.state.status == "online" and not c.state.stale
                ),
                access_points=len(d_aps),
                access_points_up=sum(
                    1 for a in d_aps if a.state and a.state.up and not a.state.stale
                ),
                wifi_clients=sum(a.state.clients for a in d_aps if a.state and not a.state.stale),
                open_alerts=sum(severities.values()),
                open_alerts_by_severity=severities,
            )
        )
    return summaries
