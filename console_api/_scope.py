"""Which alerts a principal may see.

Police see incidents: the kinds whose CAP mapping is not infrastructure and that call for a
response (not a past count). Phase 2 replaces this with the alerts' own police routing rule
(an alert is the police's when a CAP message was routed for it); the rest of the console
asks only :func:`visible_kinds`, so that change stays here.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol import PROFILES, EventKind

from ._auth import Principal, Role

INCIDENT_KINDS: frozenset[str] = frozenset(
    str(kind)
    for kind, profile in PROFILES.items()
    if profile.cap_category != "Infra" and profile.cap_urgency != "Past"
)
WIFI_KINDS: frozenset[str] = frozenset({str(EventKind.AP_DOWN), str(EventKind.AP_OVERLOAD)})
ALL_KINDS: frozenset[str] = frozenset(str(kind) for kind in EventKind)


def visible_kinds(who: Principal) -> frozenset[str]:
    return INCIDENT_KINDS if who.role is Role.POLICE else ALL_KINDS


def narrow_kinds(who: Principal, requested: Iterable[str]) -> list[str] | None:
    """The kinds to query for a request: the requested ones the principal may see (all
    visible ones when none are requested), or None when nothing requested is visible."""
    visible = visible_kinds(who)
    wanted = set(requested)
    if not wanted:
        return [] if visible == ALL_KINDS else sorted(visible)
    allowed = sorted(wanted & visible)
    return allowed or None


def may_see(who: Principal, kind: str) -> bool:
    return kind in visible_kinds(who)
