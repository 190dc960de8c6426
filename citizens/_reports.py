"""Reading citizen reports back, as the spec's service requests: status from the alert that
handles each report, status notes saying who is on it, and the notes history extension.
Personal data (names, email, phone, device, caller number) is never read here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from store import Connection

from ._catalogue import Catalogue

_COLUMNS = """r.id, r.token, r.service_code, r.description, r.lat, r.lon, r.address_string,
    r.address_id, r.media_url, r.media_id, r.requested_at, r.expected_at, r.alert_id,
    a.state AS alert_state, a.updated_at AS alert_updated_at,
    EXISTS (SELECT 1 FROM open311_links l WHERE l.request_id = r.id AND l.reason = 'camera')
        AS seen_by_camera,
    EXISTS (SELECT 1 FROM open311_links l WHERE l.request_id = r.id AND l.reason = 'duplicate')
        AS duplicate"""
_FROM = "FROM open311_requests r LEFT JOIN alerts a ON a.id = r.alert_id"

NOTES = {
    "closed": "Đã xử lý xong. / Resolved by the operations centre.",
    "camera": "Cán bộ trực đã nắm tình hình qua camera và đang xử lý. "
    "/ Operators are already on it: the cameras saw this too.",
    "duplicate": "Sự việc đã được phản ánh, cán bộ đang xử lý. "
    "/ Already reported by others; operators are on it.",
    "handling": "Cán bộ đang xử lý. / An operator is handling it.",
    "received": "Đã tiếp nhận. / Received by the operations centre.",
}
_AUDIT_SUMMARY = {
    "open": ("opened", "Đã tiếp nhận / Received"),
    "citizen_report": ("activity", "Thêm phản ánh liên quan / Related report received"),
    "acknowledge": ("activity", "Cán bộ đã tiếp nhận / Acknowledged by an operator"),
    "assign": ("activity", "Đã giao xử lý / Assigned to a team"),
    "escalate": ("activity", "Đã báo cấp trên / Escalated"),
    "resolve": ("closed", "Đã xử lý xong / Resolved"),
    "auto_resolve": ("closed", "Đã xử lý xong / Resolved"),
}


@dataclass(frozen=True, slots=True)
class Query:
    ids: list[int] | None = None
    service_codes: list[str] | None = None
    statuses: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 1000


def _status_notes(record: Any) -> tuple[str, str]:
    state = record["alert_state"]
    if state == "resolved":
        return "closed", NOTES["closed"]
    if record["seen_by_camera"]:
        return "open", NOTES["camera"]
    if record["duplicate"]:
        return "open", NOTES["duplicate"]
    if state in ("acknowledged", "assigned"):
        return "open", NOTES["handling"]
    return "open", NOTES["received"]


def service_request(record: Any, catalogue: Catalogue, media_base: str) -> dict[str, Any]:
    """One request with the spec's fields, in the spec's order."""
    service = catalogue.service(record["service_code"])
    status, notes = _status_notes(record)
    updated = max(record["requested_at"], record["alert_updated_at"] or record["requested_at"])
    media = record["media_url"]
    if media is None and record["media_id"] is not None:
        media = f"{media_base}{record['media_id']}"
    return {
        "service_request_id": str(record["id"]),
        "status": status,
        "status_notes": notes,
        "service_name": service.name if service else record["service_code"],
        "service_code": record["service_code"],
        "description": record["description"],
        "agency_responsible": service.agency_responsible if service else None,
        "service_notice": None,
        "requested_datetime": record["requested_at"],
        "updated_datetime": updated,
        "expected_datetime": record["expected_at"],
        "address": record["address_string"],
        "address_id": record["address_id"],
        "zipcode": None,
        "lat": record["lat"],
        "long": record["lon"],
        "media_url": media,
    }


async def find_requests(conn: Connection, query: Query) -> list[Any]:
    where, args = ["true"], []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.ids is not None:
        where.append(f"r.id = ANY({arg(query.ids)}::bigint[])")
    if query.service_codes is not None:
        where.append(f"r.service_code = ANY({arg(query.service_codes)}::text[])")
    if query.start is not None:
        where.append(f"r.requested_at >= {arg(query.start)}")
    if query.end is not None:
        where.append(f"r.requested_at <= {arg(query.end)}")
    if query.statuses is not None:
        closed = "coalesce(a.state = 'resolved', false)"
        wanted = set(query.statuses)
        if wanted == {"open"}:
            where.append(f"NOT {closed}")
        elif wanted == {"closed"}:
            where.append(closed)
    return list(
        await conn.fetch(
            f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)} "
            f"ORDER BY r.requested_at DESC, r.id DESC LIMIT {arg(query.limit)}",
            *args,
        )
    )


async def request_by_token(conn: Connection, token: uuid.UUID) -> int | None:
    value: int | None = await conn.fetchval(
        "SELECT id FROM open311_requests WHERE token = $1", token
    )
    return value


async def request_notes(conn: Connection, request_id: int) -> list[dict[str, Any]]:
    """The notes extension: each step of the alert that handles the report since it came
    in, in words for the citizen (no operator names, no other reporter's data)."""
    records = await conn.fetch(
        """SELECT au.at, au.action FROM open311_requests r
           JOIN alert_audit au ON au.alert_id = r.alert_id AND au.at >= r.requested_at
           WHERE r.id = $1 ORDER BY au.at, au.id""",
        request_id,
    )
    notes = []
    for record in records:
        kind, summary = _AUDIT_SUMMARY.get(record["action"], ("activity", "Cập nhật / Update"))
        notes.append({"datetime": record["at"], "summary": summary, "type": kind})
    return notes


def attributes_of(raw: str) -> dict[str, Any]:
    value: dict[str, Any] = msgspec.json.decode(raw)
    return value
