"""Channels: where an alert change goes, each staged in the transaction of the change.

Every change is first written to the change log (the console's feed follows it). Then each
channel stages what it will deliver, in the same transaction: nothing is sent here, so an
alert change and its deliveries commit, or roll back, together. The MQTT publisher and the
police delivery worker send what was staged after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from protocol import ALERT, AlertMessage, EventKind, Severity, Topics
from store import Connection

from ._cap import CapHeader, CapResource, CapStatus, Location, MsgType, Reference, render_cap
from ._model import AlertView, Reason
from ._repository import record_change
from ._routing import Routing, load_routing

_POLICE_UPDATES = frozenset({"acknowledged", "assigned", "escalated"})
_POLICE_FIRST = frozenset({"opened", "unmuted", "escalated"})
_POLICE_RELEVANT = _POLICE_UPDATES | _POLICE_FIRST | {"resolved"}


@dataclass(frozen=True, slots=True)
class Notice:
    """One committed-to-be change of an alert, as channels see it."""

    seq: int
    alert: AlertView
    reason: Reason
    actor: str = "system"
    note: str | None = None
    status: CapStatus = "Actual"


class Channel(Protocol):
    name: str

    async def stage(self, conn: Connection, notice: Notice, routing: Routing) -> bool:
        """Stage deliveries for ``notice`` inside the caller's transaction; True if any."""
        ...


class ConsoleChannel:
    """Operators' websocket. The change-log row the dispatcher writes first *is* its outbox:
    its INSERT trigger NOTIFYs at commit and :class:`AlertFeed` reads on from there."""

    name = "console"

    async def stage(self, conn: Connection, notice: Notice, routing: Routing) -> bool:
        return True


class MqttChannel:
    """``{prefix}/alerts/{district}/{severity}`` with :class:`protocol.AlertMessage`, through
    the ``mqtt_outbox`` table that :class:`MqttPublisher` drains."""

    name = "mqtt"

    async def stage(self, conn: Connection, notice: Notice, routing: Routing) -> bool:
        alert = notice.alert
        if notice.reason == "noted":
            return False  # operators' notes stay in the centre
        if alert.suppressed_by is not None or not routing.routes_mqtt(alert):
            return False
        message = AlertMessage(
            alert_id=alert.id,
            change_seq=notice.seq,
            kind=EventKind(alert.kind),
            state=alert.state,
            severity=Severity(alert.severity),
            district=alert.district_id,
            source_id=alert.source_id,
            title_vi=alert.title_vi,
            title_en=alert.title_en,
            opened_at=alert.opened_at.timestamp(),
            updated_at=alert.updated_at.timestamp(),
            zone_id=alert.zone_id,
            count=alert.count,
            change=notice.reason,
            escalation_level=alert.escalation_level,
        )
        topic = Topics(routing.topic_prefix).alerts(alert.district_id, alert.severity)
        await conn.execute(
            "INSERT INTO mqtt_outbox (topic, payload) VALUES ($1, $2)", topic, ALERT.encode(message)
        )
        return True


def _report_id(source_id: str) -> int | None:
    """The Open311 request behind a citizen report's alert (source ``open311-{id}``)."""
    digits = source_id.removeprefix("open311-")
    if digits == source_id or not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        return None
    return int(digits)


async def locate(conn: Connection, source_id: str) -> Location | None:
    record = await conn.fetchrow(
        """SELECT s.name, s.lat, s.lon, coalesce(d.name, s.district_id) AS district_name
           FROM (SELECT name, lat, lon, district_id FROM cameras WHERE id = $1
                 UNION ALL
                 SELECT name, lat, lon, district_id FROM access_points WHERE id = $1
                 UNION ALL  -- a citizen's report (Open311), where it was reported
                 SELECT coalesce(address_string, 'Open311 ' || id), lat, lon, district_id
                 FROM open311_requests WHERE id = $2) s
           LEFT JOIN districts d ON d.id = s.district_id
           LIMIT 1""",
        source_id,
        _report_id(source_id),
    )
    if record is None:
        return None
    return Location(record["name"], record["lat"], record["lon"], record["district_name"])


class PoliceChannel:
    """CAP 1.2 over signed webhooks: the first message of an incident is an Alert, later
    state changes are Updates, resolution is a Cancel; each refers to all earlier ones.
    Rows go to ``cap_messages`` and ``police_deliveries`` (one per endpoint)."""

    name = "police"

    def _msg_type(self, notice: Notice, routing: Routing, earlier: int) -> MsgType | None:
        alert = notice.alert
        if notice.reason == "resolved":
            return "Cancel" if earlier else None
        if alert.suppressed_by is not None:
            return None
        if earlier:
            return "Update" if notice.reason in _POLICE_UPDATES else None
        if notice.reason in _POLICE_FIRST and routing.routes_police(alert):
            return "Alert"
        return None

    async def stage(self, conn: Connection, notice: Notice, routing: Routing) -> bool:
        alert = notice.alert
        if notice.reason not in _POLICE_RELEVANT:
            return False  # repeats, clears, mutes: not the police's business
        if notice.reason == "opened" and not (
            alert.suppressed_by is None and routing.routes_police(alert)
        ):
            return False  # a new alert has no earlier messages: skip the lookup
        earlier = await conn.fetch(
            """SELECT identifier, sent FROM cap_messages WHERE alert_id = $1
               ORDER BY sent, length(identifier), identifier""",
            uuid.UUID(alert.id),
        )
        msg_type = self._msg_type(notice, routing, len(earlier))
        if msg_type is None:
            return False
        if earlier:
            # Updates and Cancels go to whoever was told of the incident.
            endpoints: Sequence[str] = [
                r["endpoint_id"]
                for r in await conn.fetch(
                    """SELECT DISTINCT d.endpoint_id FROM police_deliveries d
                       JOIN cap_messages m USING (identifier) WHERE m.alert_id = $1""",
                    uuid.UUID(alert.id),
                )
            ]
        else:
            endpoints = routing.police_endpoints(alert.district_id)
        if not endpoints:
            return False
        note = notice.note
        if msg_type != "Alert":
            note = f"{notice.reason} by {notice.actor}" + (f": {note}" if note else "")
        header = CapHeader(
            identifier=f"{alert.id}.{len(earlier) + 1}",
            sender=routing.sender,
            sender_name=routing.sender_name,
            sent=datetime.now(UTC).replace(microsecond=0),
            msg_type=msg_type,
            status=notice.status,
            references=[Reference(routing.sender, r["identifier"], r["sent"]) for r in earlier],
            note=note,
        )
        where = await locate(conn, alert.source_id)
        body = render_cap(alert, where, header, radius_km=routing.circle_radius_km)
        await conn.execute(
            """INSERT INTO cap_messages (identifier, alert_id, msg_type, sent, body)
               VALUES ($1, $2, $3, $4, $5)""",
            header.identifier,
            uuid.UUID(alert.id),
            msg_type,
            header.sent,
            body.decode("utf-8"),
        )
        await conn.executemany(
            """INSERT INTO police_deliveries (webhook_id, identifier, alert_id, endpoint_id)
               VALUES ($1, $2, $3, $4)""",
            [
                (f"msg_{uuid.uuid4().hex}", header.identifier, uuid.UUID(alert.id), e)
                for e in endpoints
            ],
        )
        return True


DEFAULT_CHANNELS: tuple[Channel, ...] = (ConsoleChannel(), MqttChannel(), PoliceChannel())


async def notify(
    conn: Connection,
    alert: AlertView,
    reason: Reason,
    routing: Routing,
    *,
    actor: str = "system",
    note: str | None = None,
    status: CapStatus = "Actual",
    channels: Sequence[Channel] = DEFAULT_CHANNELS,
) -> Notice:
    """Log the change and stage it on every channel; call inside the change's transaction."""
    seq = await record_change(conn, alert)
    notice = Notice(seq, alert, reason, actor, note, status)
    for channel in channels:
        await channel.stage(conn, notice, routing)
    return notice


async def stage_clip_update(conn: Connection, alert: AlertView, resource: CapResource) -> bool:
    """A CAP Update carrying an evidence clip that arrived after the incident's Alert, to
    the endpoints that were told of the incident; nothing when the police were not told or
    the incident is over. Call inside the transaction that keeps the clip."""
    if alert.state == "resolved":
        return False
    earlier = await conn.fetch(
        """SELECT identifier, sent FROM cap_messages WHERE alert_id = $1
           ORDER BY sent, length(identifier), identifier""",
        uuid.UUID(alert.id),
    )
    endpoints = [
        r["endpoint_id"]
        for r in await conn.fetch(
            """SELECT DISTINCT d.endpoint_id FROM police_deliveries d
               JOIN cap_messages m USING (identifier) WHERE m.alert_id = $1""",
            uuid.UUID(alert.id),
        )
    ]
    if not earlier or not endpoints:
        return False
    routing = await load_routing(conn)
    header = CapHeader(
        identifier=f"{alert.id}.{len(earlier) + 1}",
        sender=routing.sender,
        sender_name=routing.sender_name,
        sent=datetime.now(UTC).replace(microsecond=0),
        msg_type="Update",
        references=[Reference(routing.sender, r["identifier"], r["sent"]) for r in earlier],
        note="evidence clip added by the IOC",
    )
    where = await locate(conn, alert.source_id)
    body = render_cap(
        alert, where, header, radius_km=routing.circle_radius_km, resources=[resource]
    )
    await conn.execute(
        """INSERT INTO cap_messages (identifier, alert_id, msg_type, sent, body)
           VALUES ($1, $2, 'Update', $3, $4)""",
        header.identifier,
        uuid.UUID(alert.id),
        header.sent,
        body.decode("utf-8"),
    )
    await conn.executemany(
        """INSERT INTO police_deliveries (webhook_id, identifier, alert_id, endpoint_id)
           VALUES ($1, $2, $3, $4)""",
        [(f"msg_{uuid.uuid4().hex}", header.identifier, uuid.UUID(alert.id), e) for e in endpoints],
    )
    return True
