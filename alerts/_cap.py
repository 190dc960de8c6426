"""OASIS CAP 1.2 messages for the police: one incident (alert) as Alert, Update, Cancel.

Every message carries a vi-VN and an en-US ``info`` block, the district as ``areaDesc`` and
the camera's location as a ``circle``. Updates and Cancels list every earlier message of the
incident in ``references`` (``sender,identifier,sent`` triples), and ``incidents`` holds the
alert id, so a receiver can group them. Times are Asia/Ho_Chi_Minh with an explicit offset
(CAP refuses a trailing ``Z``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from lxml import etree

from protocol import PROFILES, EventKind, Severity

from ._model import AlertView

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
MsgType = Literal["Alert", "Update", "Cancel"]
CapStatus = Literal["Actual", "Exercise", "System", "Test"]
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
_CAP_SEVERITY_ORDER = ["Unknown", "Minor", "Moderate", "Severe", "Extreme"]
_FROM_OURS = {
    Severity.INFO: "Minor",
    Severity.MINOR: "Moderate",
    Severity.MAJOR: "Severe",
    Severity.CRITICAL: "Extreme",
}
_STATE_VI = {
    "open": "mới",
    "acknowledged": "đã tiếp nhận",
    "assigned": "đã phân công",
    "resolved": "đã kết thúc",
}


@dataclass(frozen=True, slots=True)
class Location:
    """Where the alert's source stands, from the registry."""

    name: str
    lat: float
    lon: float
    district_name: str


@dataclass(frozen=True, slots=True)
class CapResource:
    """A file the message points at (an evidence clip): CAP 1.2 ``resource``."""

    desc: str
    mime_type: str
    size: int
    uri: str
    digest: str
    """SHA-1 in hex, as CAP 1.2 defines ``digest``."""


@dataclass(frozen=True, slots=True)
class Reference:
    sender: str
    identifier: str
    sent: datetime

    def triple(self) -> str:
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True, slots=True)
class CapHeader:
    identifier: str
    sender: str
    sender_name: str
    sent: datetime
    msg_type: MsgType
    status: CapStatus = "Actual"
    references: Sequence[Reference] = ()
    note: str | None = None


def cap_time(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+07:00``: whole seconds, local offset, never ``Z``."""
    return moment.astimezone(LOCAL).replace(microsecond=0).isoformat()


def cap_severity(alert: AlertView) -> str:
    """The kind's CAP severity, raised when the rules rated this alert higher."""
    by_kind = PROFILES[EventKind(alert.kind)].cap_severity
    by_rule = _FROM_OURS[Severity(alert.severity)]
    return max(by_kind, by_rule, key=_CAP_SEVERITY_ORDER.index)


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        child.text = text
    return child


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL).strftime("%H:%M:%S %d/%m/%Y")


def _texts(
    alert: AlertView, where: Location | None, header: CapHeader, language: str
) -> tuple[str, str, str]:
    """Headline, description and instruction in one language."""
    place = where.name if where else alert.source_id
    zone = f" ({alert.zone_id})" if alert.zone_id else ""
    if language == "vi-VN":
        headline = f"{alert.title_vi} - {place}"
        description = (
            f"{alert.title_vi} tại {place}{zone}, {where.district_name if where else ''}. "
            f"Bắt đầu lúc {_local(alert.opened_at)}, ghi nhận {alert.count} lần, lần cuối "
            f"{_local(alert.last_seen_at)}. Trạng thái: {_STATE_VI[alert.state]}."
        )
        instruction = (
            "Sự việc đã kết thúc; không cần điều động thêm."
            if header.msg_type == "Cancel"
            else "Đề nghị điều lực lượng kiểm tra hiện trường và phản hồi trung tâm IOC."
        )
    else:
        headline = f"{alert.title_en} - {place}"
        description = (
            f"{alert.title_en} at {place}{zone}, {where.district_name if where else ''}. "
            f"Started {_local(alert.opened_at)} (UTC+7), seen {alert.count} time(s), last at "
            f"{_local(alert.last_seen_at)}. State: {alert.state}."
        )
        instruction = (
            "The incident is closed; no further dispatch needed."
            if header.msg_type == "Cancel"
            else "Please send a unit to verify on site and report back to the IOC."
        )
    return headline, description, instruction


def _info(
    root: etree._Element,
    alert: AlertView,
    *,
    where: Location | None,
    header: CapHeader,
    language: str,
    radius_km: float,
    resources: Sequence[CapResource] = (),
) -> None:
    profile = PROFILES[EventKind(alert.kind)]
    info = _sub(root, "info")
    _sub(info, "language", language)
    _sub(info, "category", profile.cap_category)
    _sub(info, "event", alert.title_vi if language == "vi-VN" else alert.title_en)
    _sub(info, "responseType", "AllClear" if header.msg_type == "Cancel" else "Monitor")
    _sub(info, "urgency", profile.cap_urgency)
    _sub(info, "severity", cap_severity(alert))
    _sub(info, "certainty", profile.cap_certainty)
    _sub(info, "onset", cap_time(alert.opened_at))
    _sub(info, "senderName", header.sender_name)
    headline, description, instruction = _texts(alert, where, header, language)
    _sub(info, "headline", headline)
    _sub(info, "description", description)
    _sub(info, "instruction", instruction)
    parameters = {
        "alertId": alert.id,
        "kind": alert.kind,
        "sourceId": alert.source_id,
        "zoneId": alert.zone_id or "",
        "iocSeverity": alert.severity,
        "state": alert.state,
        "count": str(alert.count),
        "escalationLevel": str(alert.escalation_level),
        "fiwareCategory": f"{profile.fiware_category}/{profile.fiware_subcategory}",
    }
    if alert.speed_kmh is not None and alert.limit_kmh is not None:
        parameters["speedKmh"] = f"{alert.speed_kmh:g}"
        parameters["limitKmh"] = f"{alert.limit_kmh:g}"
    for name, value in parameters.items():
        parameter = _sub(info, "parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    for item in resources:
        resource = _sub(info, "resource")
        _sub(resource, "resourceDesc", item.desc)
        _sub(resource, "mimeType", item.mime_type)
        _sub(resource, "size", str(item.size))
        _sub(resource, "uri", item.uri)
        _sub(resource, "digest", item.digest)
    area = _sub(info, "area")
    _sub(area, "areaDesc", where.district_name if where else alert.district_id)
    if where is not None:
        _sub(area, "circle", f"{where.lat:.5f},{where.lon:.5f} {radius_km:g}")


def render_cap(
    alert: AlertView,
    where: Location | None,
    header: CapHeader,
    *,
    radius_km: float,
    resources: Sequence[CapResource] = (),
) -> bytes:
    """The CAP 1.2 document, UTF-8 with an XML declaration."""
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(root, "identifier", header.identifier)
    _sub(root, "sender", header.sender)
    _sub(root, "sent", cap_time(header.sent))
    _sub(root, "status", header.status)
    _sub(root, "msgType", header.msg_type)
    _sub(root, "scope", "Restricted")
    _sub(root, "restriction", "Công an tỉnh / provincial police dispatch only")
    if header.note:
        _sub(root, "note", header.note)
    if header.references:
        _sub(root, "references", " ".join(r.triple() for r in header.references))
    _sub(root, "incidents", alert.id)
    for language in ("vi-VN", "en-US"):
        _info(
            root,
            alert,
            where=where,
            header=header,
            language=language,
            radius_km=radius_km,
            resources=resources,
        )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
