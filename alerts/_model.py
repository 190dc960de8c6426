"""The alert as stored and as shown to operators."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

AlertState = Literal["open", "acknowledged", "assigned", "resolved"]


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

    @classmethod
    def from_record(cls, record: Any) -> AlertView:
        return cls(
            **{f: record[f] for f in cls.__struct_fields__ if f != "id"}, id=str(record["id"])
        )


class AlertChange(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the ordered change log that the console's websocket streams."""

    seq: int
    at: datetime
    alert: AlertView


ALERT_COLUMNS = ", ".join(AlertView.__struct_fields__)
