"""Grouping alerts into incidents, against a real database: by source, by tourist site, by
related kinds near in place and time; never across unrelated kinds, far places or old
alerts; exactly once when the opening transaction rolls back; configured from the rules
file."""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from alerts import (
    AlertsEngine,
    AlertView,
    IncidentNotFoundError,
    Observation,
    RuleBook,
    RulesError,
    act_on_incident,
    alerts_of,
    audit_trail,
    group,
    incident_alerts,
    parse_rules,
)
from alerts._repository import observe
from protocol import EventKind, MqttEndpoint, Province, Severity
from store import StoreConfig

pytestmark = pytest.mark.postgres
_counter = iter(range(1, 1_000_000))
# About 111 m per 0.001 degree of latitude.
PLACES = {
    "road-1": (10.3500, 106.3500, None),
    "road-2": (10.3510, 106.3500, None),  # ~111 m north of road-1
    "road-far": (10.3700, 106.3500, None),  # ~2.2 km north
    "site-cam": (10.3600, 106.3800, "temple"),
}


@pytest.fixture
async def places(db: asyncpg.Connection) -> None:
    await db.execute(
        """INSERT INTO sites (id, name, district_id, lat, lon)
           VALUES ('temple', 'Chùa', 'my-tho', 10.3600, 106.3800)"""
    )
    for camera, (lat, lon, site) in PLACES.items():
        await db.execute(
            """INSERT INTO cameras (id, name, kind, district_id, lat, lon, fps, site_id, road)
               VALUES ($1, $1, 'traffic', 'my-tho', $2, $3, 5, $4, $5)""",
            camera,
            lat,
            lon,
            site,
            None if site else "ql1a",
        )
    # The site's access point stands 900 m away: only the site puts it with the camera.
    await db.execute(
        """INSERT INTO access_points (id, name, site_id, district_id, lat, lon, capacity)
           VALUES ('temple-ap', 'Gate', 'temple', 'my-tho', 10.3681, 106.3800, 100)"""
    )


def _obs(
    source: str, kind: EventKind, zone: str | None = "z", at: float | None = None
) -> Observation:
    n = next(_counter)
    return Observation(
        event_id=f"{source}:{kind}:{n}",
        kind=kind,
        source_id=source,
        zone_id=zone,
        phase="start",
        at=time.time() if at is None else at,
    )


async def _open(db: asyncpg.Connection, obs: Observation) -> AlertView:
    async with db.transaction():
        result = await observe(db, obs, "my-tho", Severity.MAJOR)
    assert result is not None
    assert result[1] == "opened"
    return result[0]


async def _reason(db: asyncpg.Connection, alert: AlertView) -> str | None:
    return (await audit_trail(db, alert.id))[0].reason


@pytest.mark.usefixtures("places")
async def test_same_source_joins_whatever_the_kind(db: asyncpg.Connection) -> None:
    first = await _open(db, _obs("road-1", EventKind.INTRUSION, "shoulder"))
    second = await _open(db, _obs("road-1", EventKind.WRONG_WAY, "toward"))
    assert second.incident_id == first.incident_id
    assert (first.lat, first.lon) == (10.35, 106.35)
    assert await _reason(db, first) == "new_incident"
    assert await _reason(db, second) == "same_source"
    trail = await audit_trail(db, second.id)
    assert (trail[0].actor, trail[0].action, trail[0].note) == ("system", "open", None)
    assert str(trail[0].detail).startswith("road-1:wrong_way:")


@pytest.mark.usefixtures("places")
async def test_a_camera_and_the_wifi_of_one_site_join(db: asyncpg.Connection) -> None:
    camera = await _open(db, _obs("site-cam", EventKind.INTRUSION, "floor"))
    wifi = await _open(db, _obs("temple-ap", EventKind.AP_OVERLOAD, None))
    assert wifi.incident_id == camera.incident_id
    assert await _reason(db, wifi) == "same_site"


@pytest.mark.usefixtures("places")
async def test_related_kinds_nearby_join_unrelated_or_far_do_not(db: asyncpg.Connection) -> None:
    stopped = await _open(db, _obs("road-1", EventKind.STOPPED_VEHICLE))
    congestion = await _open(db, _obs("road-2", EventKind.CONGESTION))
    assert congestion.incident_id == stopped.incident_id
    assert await _reason(db, congestion) == "nearby"
    # Intrusion is not related to the traffic kinds: 111 m away, it stands alone.
    intrusion = await _open(db, _obs("road-2", EventKind.INTRUSION, "shoulder"))
    assert intrusion.incident_id == congestion.incident_id  # ... except by its source
    lone = await _open(db, _obs("road-far", EventKind.CONGESTION))
    assert lone.incident_id != stopped.incident_id
    [incident] = [i for i in group(await incident_alerts(db)) if i.id == stopped.incident_id]
    assert incident.alert_count == 3
    assert incident.kinds == ["congestion", "intrusion", "stopped_vehicle"]
    assert incident.source_ids == ["road-1", "road-2"]


@pytest.mark.usefixtures("places")
async def test_unrelated_kinds_nearby_open_separate_incidents(db: asyncpg.Connection) -> None:
    intrusion = await _open(db, _obs("road-1", EventKind.INTRUSION, "shoulder"))
    congestion = await _open(db, _obs("road-2", EventKind.CONGESTION))
    assert congestion.incident_id != intrusion.incident_id
    assert await _reason(db, congestion) == "new_incident"


@pytest.mark.usefixtures("places")
async def test_only_recent_alerts_of_unresolved_incidents_are_joined(
    db: asyncpg.Connection,
) -> None:
    now = time.time()
    old = await _open(db, _obs("road-1", EventKind.CONGESTION, at=now - 3600))
    later = await _open(db, _obs("road-2", EventKind.CONGESTION, at=now))
    assert later.incident_id != old.incident_id  # last seen an hour ago: outside 1800 s
    await act_on_incident(db, later.incident_id, "resolve", actor="op1")
    again = await _open(db, _obs("road-2", EventKind.CONGESTION, at=now))
    assert again.incident_id != later.incident_id  # a resolved incident is closed


@pytest.mark.usefixtures("places")
async def test_a_rolled_back_opening_leaves_no_incident(db: asyncpg.Connection) -> None:
    class Retry(Exception):
        pass

    async def open_then_fail() -> None:
        async with db.transaction():
            await observe(db, _obs("road-1", EventKind.CONGESTION), "my-tho", Severity.MAJOR)
            raise Retry

    with pytest.raises(Retry):
        await open_then_fail()
    assert await db.fetchval("SELECT count(*) FROM incidents") == 0
    alert = await _open(db, _obs("road-1", EventKind.CONGESTION))
    assert await db.fetchval("SELECT count(*) FROM incidents") == 1
    assert [a.id for a in await alerts_of(db, alert.incident_id)] == [alert.id]


@pytest.mark.usefixtures("places")
async def test_the_engine_groups_as_the_rules_file_says(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    province = Province()
    raw = {"incidents": {"radius_m": 50, "by_site": False, "related": []}}
    engine = AlertsEngine(
        MqttEndpoint(), database, province, rules=RuleBook.fixed(parse_rules(raw, province))
    )
    for obs in (
        _obs("road-1", EventKind.CONGESTION),
        _obs("road-2", EventKind.CONGESTION),  # 111 m: beyond 50 m
        _obs("site-cam", EventKind.INTRUSION),
        _obs("temple-ap", EventKind.AP_OVERLOAD, None),  # same site, but by_site is off
    ):
        async with db.transaction():
            await engine.apply(db, obs, "my-tho")
    assert await db.fetchval("SELECT count(DISTINCT incident_id) FROM alerts") == 4


@pytest.mark.usefixtures("places")
async def test_by_road_joins_related_kinds_along_a_road_in_one_district(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    province = Province()
    raw = {"incidents": {"by_road": True, "radius_m": 50}}
    engine = AlertsEngine(
        MqttEndpoint(), database, province, rules=RuleBook.fixed(parse_rules(raw, province))
    )

    async def apply(obs: Observation, district: str = "my-tho") -> AlertView:
        async with db.transaction():
            await engine.apply(db, obs, district)
        [alert] = [
            a
            for a in await incident_alerts(db)
            if a.source_id == obs.source_id and a.kind == obs.kind
        ]
        return alert

    first = await apply(_obs("road-1", EventKind.CONGESTION))
    far = await apply(_obs("road-far", EventKind.WRONG_WAY))  # 2.2 km on, same road
    assert far.incident_id == first.incident_id
    assert await _reason(db, far) == "same_road"
    # Not related to the traffic kinds: an incident of its own.
    intrusion = await apply(_obs("road-2", EventKind.INTRUSION))
    assert intrusion.incident_id != first.incident_id
    await act_on_incident(db, intrusion.incident_id, "resolve", actor="op1")
    # The same road in another district: an incident of its own.
    await db.execute("UPDATE alerts SET district_id = 'cho-gao' WHERE district_id = 'my-tho'")
    elsewhere = await apply(_obs("road-2", EventKind.STOPPED_VEHICLE))
    assert elsewhere.incident_id != first.incident_id
    assert await _reason(db, elsewhere) == "new_incident"


def test_the_incidents_section_is_checked() -> None:
    province = Province()
    with pytest.raises(RulesError) as caught:
        parse_rules(
            {"incidents": {"radius_m": -1, "related": [["crowd"], ["crowd", "crowd"]], "x": 1}},
            province,
        )
    text = str(caught.value)
    assert "incidents.radius_m" in text
    assert "incidents.related[0]" in text
    assert "incidents.x" in text
    with pytest.raises(
        RulesError, match=r"incidents\.related: group 0 names a kind more than once"
    ):
        parse_rules({"incidents": {"related": [["crowd", "crowd"]]}}, province)
    rules = parse_rules({"incidents": {"related": [["crowd", "intrusion"]]}}, province)
    assert rules.spec.incidents.related_kinds("intrusion") == ["crowd", "intrusion"]
    assert rules.spec.incidents.related_kinds("congestion") == ["congestion"]


async def test_alerts_of_an_unknown_incident(db: asyncpg.Connection) -> None:
    with pytest.raises(IncidentNotFoundError):
        await alerts_of(db, str(uuid.uuid4()))
    with pytest.raises(IncidentNotFoundError):
        await alerts_of(db, "not-a-uuid")
