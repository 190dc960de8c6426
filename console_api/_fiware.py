"""Read-only FIWARE Smart Data Models feeds: ``Alert`` and ``TrafficFlowObserved``.

Entities are NGSI-LD normalized JSON: each attribute is ``{"type": "Property", "value": ...}``
(``GeoProperty`` for location), times are ``{"@type": "DateTime", "@value": ...}`` in UTC,
ids are ``urn:ngsi-ld:<Type>:<our id>``, and every entity names its ``@context``. A third
party builds on these without knowing our tables; the answer is served as
``application/ld+json``, an array as an NGSI-LD query would return.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alerts import AlertView
from protocol import PROFILES, EventKind

from . import _planner as planner
from ._bounds import Ids, time_range
from ._deps import AUTH_RESPONSES, History, Incidents, Pool
from ._history import check_points, period_of
from ._live_state import places as places_of
from ._openapi import Responses, json_response
from ._planner import BUCKET_SIZE, Bucket, Places, Series
from ._scope import visible_alerts

router = APIRouter(prefix="/api/v1/fiware", tags=["open data"], responses=AUTH_RESPONSES)

LD_JSON = "application/ld+json"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
ALERT_CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld",
    CORE_CONTEXT,
]
TRAFFIC_CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"
    "context.jsonld",
    CORE_CONTEXT,
]
# Our severities onto the data model's enum (informational, low, medium, high, critical).
SEVERITY = {"info": "informational", "minor": "medium", "major": "high", "critical": "critical"}
_KINDS = {str(k): k for k in EventKind}
MODEL_SUBCATEGORIES = frozenset(
    {
        "carAccident",
        "carStopped",
        "carWrongDirection",
        "crowdRisk",
        "flood",
        "hazardOnRoad",
        "suspiciousAction",
        "trafficJam",
    }
)
"""The values of the Alert model's ``subCategory`` enum that our vocabulary uses. A kind whose
subcategory the model lacks (``equipmentFailure``: camera_offline, ap_down,
delivery_failed; ``trafficFlow``: line_crossing; ``overload``: ap_overload) leaves
``subCategory`` out and carries ours in the extra attribute ``iocSubCategory`` (documented
in docs/console.md), so the entity stays valid against the model's schema."""
_ENTITIES: Responses = {200: {"description": "NGSI-LD entities", "content": {LD_JSON: {}}}}


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def when(t: datetime) -> dict[str, Any]:
    return prop({"@type": "DateTime", "@value": _iso(t)})


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def geo(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def alert_entity(
    alert: AlertView,
    place: tuple[float, float] | None,
    district_name: str | None,
    lang: Literal["vi", "en"],
) -> dict[str, Any]:
    known = _KINDS.get(alert.kind)
    profile = None if known is None else PROFILES[known]
    ours = profile.fiware_subcategory if profile else alert.kind
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Alert:{alert.id}",
        "type": "Alert",
        "category": prop(profile.fiware_category if profile else "security"),
        "severity": prop(SEVERITY.get(alert.severity, "medium")),
        "description": prop(alert.title_vi if lang == "vi" else alert.title_en),
        "alertSource": prop(f"urn:ngsi-ld:Device:{alert.source_id}"),
        "dateIssued": when(alert.opened_at),
        "validFrom": when(alert.opened_at),
        "data": prop(
            {
                "kind": alert.kind,
                "state": alert.state,
                "count": alert.count,
                "zoneId": alert.zone_id,
                "lastSeenAt": _iso(alert.last_seen_at),
            }
        ),
        "@context": ALERT_CONTEXT,
    }
    if ours in MODEL_SUBCATEGORIES:
        entity["subCategory"] = prop(ours)
    else:
        entity["iocSubCategory"] = prop(ours)
    if alert.resolved_at is not None:
        entity["validTo"] = when(alert.resolved_at)
    if place is not None:
        entity["location"] = geo(*place)
    if district_name is not None:
        entity["address"] = prop({"addressLocality": district_name, "addressCountry": "VN"})
    return entity


MAX_ENTITIES = 20_000
"""Most TrafficFlowObserved entities one answer may hold. Each costs ~4.7 KB while built and
encoded: the history endpoints' 250,000 points would peak at ~1.1 GiB per request; this at
~89 MiB (``ioc bench fiware``, docs/numbers.md)."""


def traffic_flow_entities(
    series: Series,
    bucket: Bucket,
    place: tuple[float, float] | None,
    name: str | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One entity per non-empty, finished bucket of a (camera, line, direction) series: the
    bucket still running (its end after ``now``) is left out until it is complete."""
    camera, line, direction = (series.key[k] for k in ("camera_id", "line_id", "direction"))
    size = BUCKET_SIZE[bucket]
    moment = now or datetime.now(UTC)
    entities = []
    for p in series.points:
        end = p.t + size
        if p.value == 0 or end > moment:
            continue
        entity: dict[str, Any] = {
            "id": (
                f"urn:ngsi-ld:TrafficFlowObserved:{camera}:{line}:{direction}:"
                f"{int(p.t.timestamp())}"
            ),
            "type": "TrafficFlowObserved",
            # An ISO 8601 interval is Text in the model, not a DateTime.
            "dateObserved": prop(f"{_iso(p.t)}/{_iso(end)}"),
            "dateObservedFrom": when(p.t),
            "dateObservedTo": when(end),
            "intensity": prop(int(p.value)),
            "laneDirection": prop(direction),
            "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:{camera}"},
            "description": prop(f"Vehicles crossing counting line {line} of camera {camera}"),
            "@context": TRAFFIC_CONTEXT,
        }
        if name is not None:
            entity["name"] = prop(name)
        if place is not None:
            entity["location"] = geo(*place)
        entities.append(entity)
    return entities


@router.get("/Alert", responses=_ENTITIES)
async def alert_feed(
    *,
    pool: Pool,
    who: Incidents,
    state: Annotated[
        list[Literal["open", "acknowledged", "assigned", "resolved"]] | None,
        Query(max_length=4),
    ] = None,
    since: Annotated[datetime | None, Query(description="Opened at or after")] = None,
    until: Annotated[datetime | None, Query(description="Opened before")] = None,
    lang: Literal["vi", "en"] = "vi",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """Alerts as FIWARE ``Alert`` entities, newest first (the same bounds as /alerts)."""
    window = time_range(since, until, default_span=timedelta(days=7), max_span=timedelta(days=92))
    async with pool.acquire() as conn:
        alerts = await visible_alerts(
            conn,
            who,
            states=state or (),
            since=window.since,
            until=window.until,
            limit=limit,
        )
        places = await places_of(conn, (a.source_id for a in alerts))
        names = {r["id"]: r["name"] for r in await conn.fetch("SELECT id, name FROM districts")}
    return json_response(
        [alert_entity(a, places.get(a.source_id), names.get(a.district_id), lang) for a in alerts],
        media_type=LD_JSON,
    )


@router.get("/TrafficFlowObserved", responses=_ENTITIES)
async def traffic_flow_feed(
    *,
    pool: Pool,
    who: History,
    bucket: Bucket = "hour",
    since: Annotated[datetime | None, Query(description="Start (ISO 8601 with offset)")] = None,
    until: Annotated[datetime | None, Query(description="End, exclusive")] = None,
    camera: Annotated[Ids, Query(max_length=50, description="Camera ids (repeat)")] = None,
) -> Response:
    """Traffic counts per counting line and direction as ``TrafficFlowObserved`` entities,
    one per bucket with traffic (the history endpoints' bounds apply)."""
    period = period_of(bucket, since, until)
    places = Places(cameras=tuple(camera or ()))
    async with pool.acquire() as conn:
        check_points(await planner.traffic_cost(conn, "line", places), period, MAX_ENTITIES)
        series = await planner.traffic(conn, period, "line", places)
        cams = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, name, lon, lat FROM cameras WHERE id = ANY($1::text[])",
                sorted({s.key["camera_id"] for s in series}),
            )
        }
    entities = []
    for s in series:
        cam = cams.get(s.key["camera_id"])
        entities.extend(
            traffic_flow_entities(
                s,
                bucket,
                None if cam is None else (cam["lon"], cam["lat"]),
                None if cam is None else cam["name"],
            )
        )
    return json_response(entities, media_type=LD_JSON)
