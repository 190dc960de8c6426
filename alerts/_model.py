"""The alert as stored and as shown to operators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec

from protocol import EventKind

AlertState = Literal["open", "acknowledged", "assigned", "resolved"]
Reason = Literal[
    "opened",
    "repeated",
    "cleared",
    "acknowledged",
    "assigned",
    "resolved",
    "escalated",
    "muted",
    "unmuted",
    "noted",
]
"""What happened to an alert in one change."""


class AlertView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    source_id: str
    zone_id: str | None
    district_id: str
    severity: str
    state: AlertState
    title_vi: str
    title_en: str
    count: int
    opened_at: datetime
    last_seen_at: datetime
    cleared_at: datetime | None
    acknowledged_by: str | None
    assigned_to: str | None
    resolved_at: datetime | None
    first_frame_captured_at: datetime | None
    updated_at: datetime
    suppressed_by: str | None = None
    """Why the alert is muted (no MQTT, no police, no escalation): ``maintenance:<window>``
    or ``inhibited:<alert id>`` (an open camera_offline/camera_tamper of the same camera)."""
    escalation_level: int = 0
    incident_id: str
    """The incident the alert belongs to (every alert belongs to exactly one)."""
    lat: float | None = None
    lon: float | None = None
    """The place of its camera or access point (None for sources with no place)."""
    note_count: int = 0
    """Notes operators added (audit lines with action ``note``)."""
    speed_kmh: float | None = None
    limit_kmh: float | None = None
    """speeding: the speed of the vehicle that opened the alert and its gate's limit (km/h)."""

    @classmethod
    def from_record(cls, record: Any) -> AlertView:
        return cls(
            **{f: record[f] for f in cls.__struct_fields__ if f not in _UUIDS},
            id=str(record["id"]),
            incident_id=str(record["incident_id"]),
        )


_UUIDS = frozenset({"id", "incident_id"})


@dataclass(frozen=True, slots=True)
class Observation:
    """One sighting of a condition, from a vision event or derived by the centre (Wi-Fi,
    delivery health): it opens or repeats an alert, or marks it cleared."""

    event_id: str
    kind: EventKind
    source_id: str
    zone_id: str | None
    phase: Literal["start", "update", "end"]
    at: float
    """Epoch seconds: when the condition was seen (start/update) or ended (end)."""
    frame_captured_at: float | None = None
    speed_kmh: float | None = None
    limit_kmh: float | None = None
    """speeding: the measured speed and the gate's limit."""


class AlertChange(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the ordered change log that the console's websocket streams."""

    seq: int
    at: datetime
    alert: AlertView


ALERT_COLUMNS = ", ".join(AlertView.__struct_fields__)
