"""Where alert changes go: the routing part of the rules, shared through the store.

The alerts service publishes its routing on every (re)load. Any process that changes an
alert (the console's acknowledge/assign/resolve) reads it in the same transaction, so its
change stages the same MQTT and police deliveries the service itself would have staged.
"""

from __future__ import annotations

import msgspec

from protocol import DEFAULT_PREFIX, EventKind, Severity, severity_rank
from store import Connection

from ._model import AlertView
from ._rules import Route, Rules


class RouteSpec(msgspec.Struct, frozen=True, kw_only=True):
    kinds: list[str] = []
    min_severity: str = Severity.INFO.value
    districts: list[str] = []
    """District ids."""

    def admits(self, kind: str, severity: str, district: str) -> bool:
        return (
            (not self.kinds or kind in self.kinds)
            and severity_rank(Severity(severity)) >= severity_rank(Severity(self.min_severity))
            and (not self.districts or district in self.districts)
        )


class PoliceTarget(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    districts: list[str] = []


class Routing(msgspec.Struct, frozen=True, kw_only=True):
    topic_prefix: str = DEFAULT_PREFIX
    mqtt: RouteSpec | None = None
    """None: the channel is off."""
    police: RouteSpec | None = None
    endpoints: list[PoliceTarget] = []
    sender: str = "ioc.province.invalid"
    sender_name: str = "IOC"
    circle_radius_km: float = 0.3
    v: int = 1

    def routes_mqtt(self, alert: AlertView) -> bool:
        return self.mqtt is not None and self.mqtt.admits(
            alert.kind, alert.severity, alert.district_id
        )

    def routes_police(self, alert: AlertView) -> bool:
        if alert.kind == EventKind.DELIVERY_FAILED:
            return False  # never report a failing police link over that same link
        return self.police is not None and self.police.admits(
            alert.kind, alert.severity, alert.district_id
        )

    def police_endpoints(self, district: str) -> list[str]:
        return [e.id for e in self.endpoints if not e.districts or district in e.districts]


CONSOLE_ONLY = Routing()
"""Before the alerts service has published any rules: changes reach the console only."""
_decode = msgspec.json.Decoder(Routing)
_encode = msgspec.json.Encoder()


def routing_from(rules: Rules, topic_prefix: str = DEFAULT_PREFIX) -> Routing:
    def spec(route: Route) -> RouteSpec:
        return RouteSpec(
            kinds=[str(k) for k in route.kinds],
            min_severity=str(route.min_severity),
            districts=sorted({rules.district_id(d) for d in route.districts}),
        )

    police = rules.spec.police
    return Routing(
        topic_prefix=topic_prefix,
        mqtt=spec(rules.spec.routes.mqtt),
        police=spec(rules.spec.routes.police),
        endpoints=[PoliceTarget(id=e.id, districts=sorted(e.districts)) for e in rules.endpoints],
        sender=police.sender,
        sender_name=police.sender_name,
        circle_radius_km=police.circle_radius_km,
    )


async def publish_routing(conn: Connection, routing: Routing) -> None:
    await conn.execute(
        """INSERT INTO alert_routing (id, routing) VALUES (true, $1::jsonb)
           ON CONFLICT (id) DO UPDATE SET routing = EXCLUDED.routing, published_at = now()""",
        _encode.encode(routing).decode(),
    )


async def load_routing(conn: Connection) -> Routing:
    text = await conn.fetchval("SELECT routing::text FROM alert_routing WHERE id")
    return CONSOLE_ONLY if text is None else _decode.decode(text)
