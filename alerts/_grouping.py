"""Grouping alerts into incidents: the rules file's ``incidents:`` section and the one
statement that puts a newly opened alert into an incident.

An alert that opens joins an unresolved incident when one of that incident's unresolved
alerts has the same source, or the same tourist site, or is of a related kind within
``radius_m`` and ``window_s`` of it (or, with ``by_road``, within ``window_s`` on the same
road in the same district); otherwise it opens a new incident. It runs in the
transaction that opens the alert, behind the change log's lock, so two alerts opening at
once cannot both miss each other, and a retried transaction groups exactly once.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol import EventKind
from store import Connection

JoinReason = Literal["new_incident", "same_source", "same_site", "nearby", "same_road"]
"""Why an alert is in its incident (the reason code of its ``open`` audit line)."""
_REASONS: dict[int, JoinReason] = {1: "same_source", 2: "same_site", 3: "nearby", 4: "same_road"}


def _default_related() -> list[list[EventKind]]:
    return [
        [EventKind.STOPPED_VEHICLE, EventKind.CONGESTION, EventKind.WRONG_WAY],
        [EventKind.CROWD, EventKind.AP_OVERLOAD],
        [EventKind.CAMERA_OFFLINE, EventKind.CAMERA_TAMPER],
    ]


class IncidentGrouping(BaseModel):
    """The ``incidents:`` section of the rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by_source: bool = True
    """Alerts of one camera or access point join one incident, whatever their kinds."""
    by_site: bool = True
    """Alerts of the cameras and access points of one tourist site join one incident."""
    radius_m: Annotated[float, Field(ge=0.0, le=50_000.0)] = 250.0
    """Alerts of related kinds at most this far apart join one incident..."""
    window_s: Annotated[float, Field(ge=0.0, le=7 * 86_400.0)] = 1800.0
    """... when the other alert was last seen at most this long before the new one opened."""
    by_road: bool = False
    """Alerts of related kinds from cameras on one road (the registry's ``road``) in one
    district, within ``window_s``, join one incident: a condition along a road (a jam
    spreading, a storm of detections along a highway) is one thing to handle."""
    related: list[Annotated[list[EventKind], Field(min_length=2)]] = Field(
        default_factory=_default_related
    )
    """Groups of kinds that belong together nearby; a kind is always related to itself."""

    @field_validator("related")
    @classmethod
    def _distinct(cls, groups: list[list[EventKind]]) -> list[list[EventKind]]:
        for i, group in enumerate(groups):
            if len(set(group)) != len(group):
                raise ValueError(f"group {i} names a kind more than once")
        return groups

    @functools.cached_property
    def _related(self) -> dict[str, list[str]]:
        out: dict[str, set[str]] = {str(k): {str(k)} for k in EventKind}
        for group in self.related:
            for kind in group:
                out[str(kind)].update(str(k) for k in group)
        return {k: sorted(v) for k, v in out.items()}

    def related_kinds(self, kind: str) -> list[str]:
        return self._related.get(kind, [kind])


DEFAULT_GROUPING = IncidentGrouping()

# One round trip: the source's place (camera or AP), the best unresolved incident to join
# (same source, then same site, then related nearby, then related on the same road; the
# oldest alert's within a rule), a new incident when there is none, and the alert updated
# to point at it. It reads the unresolved alerts only (through the partial unique index of
# migration 200): 0.4 ms with 400 of them beside 60,000 resolved ones.
_JOIN = """
WITH place AS (
    SELECT lat, lon, site_id, road FROM cameras WHERE id = $2::text
    UNION ALL
    SELECT lat, lon, site_id, NULL FROM access_points WHERE id = $2::text
    LIMIT 1
), here AS (
    SELECT p.lat, p.lon, p.site_id, p.road
    FROM (VALUES (1)) AS one (x) LEFT JOIN place p ON true
), candidate AS (
    SELECT a.incident_id,
           CASE WHEN $5::bool AND a.source_id = $2 THEN 1
                WHEN $6::bool AND a.site_id = h.site_id THEN 2
                WHEN m.related AND m.metres <= $7::float8 THEN 3
                ELSE 4 END AS rule
    FROM alerts a
    CROSS JOIN here h
    CROSS JOIN LATERAL (
        SELECT a.kind = ANY($3::text[])
                   AND a.last_seen_at >= $4::timestamptz - make_interval(secs => $8::float8)
                   AS related,
               6371000.0 * sqrt(power(radians(a.lat - h.lat), 2)
                                + power(radians(a.lon - h.lon) * cos(radians(h.lat)), 2))
                   AS metres
    ) m
    WHERE a.state <> 'resolved' AND a.id <> $1::uuid AND a.incident_id IS NOT NULL
      AND (($5::bool AND a.source_id = $2)
           OR ($6::bool AND a.site_id = h.site_id)
           OR (m.related AND (m.metres <= $7::float8
                              OR ($9::bool AND a.road = h.road
                                  AND a.district_id = $10::text))))
    ORDER BY rule, a.opened_at
    LIMIT 1
), created AS (
    INSERT INTO incidents (opened_at)
    SELECT $4::timestamptz WHERE NOT EXISTS (SELECT 1 FROM candidate)
    RETURNING id
)
UPDATE alerts SET
    incident_id = coalesce((SELECT incident_id FROM candidate), (SELECT id FROM created)),
    lat = (SELECT lat FROM here),
    lon = (SELECT lon FROM here),
    site_id = (SELECT site_id FROM here),
    road = (SELECT road FROM here)
WHERE id = $1
RETURNING {columns}, (SELECT rule FROM candidate) AS joined_by
"""


async def join_incident(
    conn: Connection,
    alert_id: str,
    *,
    source_id: str,
    kind: str,
    district_id: str,
    opened_at: datetime,
    grouping: IncidentGrouping,
    columns: str,
) -> tuple[asyncpg.Record, JoinReason]:
    """Put the just-inserted alert ``alert_id`` into an incident; returns the alert's row
    (``columns``) as updated and why it is in that incident."""
    record = await conn.fetchrow(
        _JOIN.format(columns=columns),
        alert_id,
        source_id,
        grouping.related_kinds(kind),
        opened_at,
        grouping.by_source,
        grouping.by_site,
        grouping.radius_m,
        grouping.window_s,
        grouping.by_road,
        district_id,
    )
    if record is None:
        raise RuntimeError(f"alert {alert_id} vanished inside its own transaction")
    rule = record["joined_by"]
    return record, "new_incident" if rule is None else _REASONS[rule]
