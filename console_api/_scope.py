"""Which alerts a principal may see.

Operators and administrators see every alert. Police see the incidents the alerts service
actually staged for them: alerts with at least one CAP message in ``cap_messages`` (the
rules' police route admitted them when they opened or when their mute ended), and never
Wi-Fi data (no ``ap_*`` alerts, whatever the rules say). An alert becomes visible to police
with its first CAP message and stays visible, updates and cancellation included. This
module is the only place that knows the rule; the REST endpoints, the feeds and the live
websocket all ask it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from alerts import AlertView, list_alerts
from protocol import EventKind
from store import Connection

from ._auth import Principal, Role

WIFI_KINDS: frozenset[str] = frozenset({str(EventKind.AP_DOWN), str(EventKind.AP_OVERLOAD)})
ALL_KINDS: frozenset[str] = frozenset(str(kind) for kind in EventKind)
POLICE_KINDS: frozenset[str] = ALL_KINDS - WIFI_KINDS


def is_police(who: Principal) -> bool:
    return who.role is Role.POLICE


def visible_kinds(who: Principal) -> frozenset[str]:
    return POLICE_KINDS if is_police(who) else ALL_KINDS


def narrow_kinds(who: Principal, requested: Iterable[str]) -> list[str] | None:
    """The kinds to query for a request: the requested ones the principal may see (all
    visible ones when none are requested), or None when nothing requested is visible."""
    visible = visible_kinds(who)
    wanted = set(requested)
    if not wanted:
        return [] if visible == ALL_KINDS else sorted(visible)
    allowed = sorted(wanted & visible)
    return allowed or None


async def routed_to_police(conn: Connection, alert_ids: Collection[str]) -> set[str]:
    """Those of ``alert_ids`` for which a CAP message was staged for the police."""
    if not alert_ids:
        return set()
    rows = await conn.fetch(
        "SELECT DISTINCT alert_id FROM cap_messages WHERE alert_id = ANY($1::uuid[])",
        [uuid.UUID(a) for a in alert_ids],
    )
    return {str(r["alert_id"]) for r in rows}


async def admit(conn: Connection, who: Principal, alerts: Sequence[AlertView]) -> list[AlertView]:
    """The alerts of ``alerts`` the principal may see, in their order."""
    if not is_police(who):
        return list(alerts)
    candidates = [a for a in alerts if a.kind in POLICE_KINDS]
    routed = await routed_to_police(conn, [a.id for a in candidates])
    return [a for a in candidates if a.id in routed]


async def may_see(conn: Connection, who: Principal, alert: AlertView) -> bool:
    return bool(await admit(conn, who, [alert]))


async def visible_alerts(
    conn: Connection,
    who: Principal,
    *,
    states: Sequence[str] = (),
    kinds: Sequence[str] = (),
    districts: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[AlertView]:
    """Alerts opened in ``[since, until)`` the principal may see, newest first; for police
    the filter runs in the query, so ``limit`` counts their incidents only."""
    allowed = narrow_kinds(who, kinds)
    if allowed is None:
        return []
    return await list_alerts(
        conn,
        states=states,
        kinds=allowed,
        districts=districts,
        since=since,
        until=until,
        limit=limit,
        sent_to_police=is_police(who),
    )
