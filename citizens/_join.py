"""Joining citizen reports to what the cameras and Wi-Fi already raised, and to each other.

Each question is one small function over the store, so that the lead can point them at
incidents later: today a report joins an open alert through a link row (``open311_links``).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import EventKind
from store import Connection

from ._catalogue import Catalogue, Joining

SOURCES = """(SELECT id, lat, lon FROM cameras UNION ALL SELECT id, lat, lon FROM access_points)"""


def metres(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """SQL for the distance in metres between two points (equirectangular: exact enough at
    a few hundred metres)."""
    return (
        f"(6371000.0 * sqrt(power(radians({lat2} - {lat1}), 2) + "
        f"power(radians({lon2} - {lon1}) * cos(radians({lat1})), 2)))"
    )


@dataclass(frozen=True, slots=True)
class Place:
    lat: float
    lon: float


async def camera_alert_near(
    conn: Connection, place: Place, kinds: list[EventKind], joining: Joining
) -> str | None:
    """The nearest open camera or Wi-Fi alert of one of ``kinds`` within the radius, seen
    within the window before now."""
    if not kinds:
        return None
    value = await conn.fetchval(
        f"""SELECT a.id FROM alerts a JOIN {SOURCES} s ON s.id = a.source_id
            WHERE a.state <> 'resolved' AND a.kind = ANY($1::text[])
              AND a.last_seen_at >= now() - make_interval(secs => $4)
              AND {metres("s.lat", "s.lon", "$2", "$3")} <= $5
            ORDER BY {metres("s.lat", "s.lon", "$2", "$3")} LIMIT 1""",
        [str(k) for k in kinds],
        place.lat,
        place.lon,
        joining.window_s,
        joining.radius_m,
    )
    return None if value is None else str(value)


async def duplicate_of(
    conn: Connection, place: Place, service_code: str, joining: Joining
) -> str | None:
    """The alert of an open report of the same service nearby and recent: a new report
    joins it instead of opening another."""
    value = await conn.fetchval(
        f"""SELECT r.alert_id FROM open311_requests r JOIN alerts a ON a.id = r.alert_id
            WHERE r.service_code = $1 AND a.kind = $6 AND a.state <> 'resolved'
              AND r.requested_at >= now() - make_interval(secs => $4)
              AND {metres("r.lat", "r.lon", "$2", "$3")} <= $5
            ORDER BY r.requested_at LIMIT 1""",
        service_code,
        place.lat,
        place.lon,
        joining.window_s,
        joining.radius_m,
        str(EventKind.CITIZEN_REPORT),
    )
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Joined:
    request_id: int
    alert_id: str


async def reports_near_new_alerts(conn: Connection, catalogue: Catalogue) -> list[Joined]:
    """The reverse join: camera and Wi-Fi alerts that opened near open reports of a service
    that joins their kind, linked now (each pair once)."""
    pairs = [(s.code, str(k)) for s in catalogue.services for k in s.joins]
    if not pairs:
        return []
    joining = catalogue.joining
    records = await conn.fetch(
        f"""INSERT INTO open311_links (request_id, alert_id, reason)
            SELECT r.id, a.id, 'camera'
            FROM unnest($1::text[], $2::text[]) AS p(service_code, kind)
            JOIN alerts a ON a.kind = p.kind AND a.state <> 'resolved'
            JOIN {SOURCES} s ON s.id = a.source_id
            JOIN open311_requests r ON r.service_code = p.service_code
            JOIN alerts own ON own.id = r.alert_id AND own.state <> 'resolved'
            WHERE a.opened_at >= now() - make_interval(secs => $3)
              AND abs(extract(epoch FROM a.opened_at - r.requested_at)) <= $3
              AND {metres("s.lat", "s.lon", "r.lat", "r.lon")} <= $4
              AND NOT EXISTS (SELECT 1 FROM open311_links l
                              WHERE l.request_id = r.id AND l.reason = 'camera')
            ON CONFLICT DO NOTHING
            RETURNING request_id, alert_id""",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        joining.window_s,
        joining.radius_m,
    )
    return [Joined(r["request_id"], str(r["alert_id"])) for r in records]
