"""Event and alert vocabulary, with its FIWARE Alert and OASIS CAP 1.2 mappings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    INTRUSION = "intrusion"
    LINE_CROSSING = "line_crossing"
    CONGESTION = "congestion"
    STOPPED_VEHICLE = "stopped_vehicle"
    WRONG_WAY = "wrong_way"
    SPEEDING = "speeding"
    """A vehicle timed over a speed gate's limit (an estimate, not certified enforcement)."""
    CROWD = "crowd"
    CAMERA_TAMPER = "camera_tamper"
    CAMERA_OFFLINE = "camera_offline"
    AP_DOWN = "ap_down"
    AP_OVERLOAD = "ap_overload"
    DELIVERY_FAILED = "delivery_failed"
    """Raised by the centre itself when police deliveries keep failing."""
    TRAFFIC_ANOMALY = "traffic_anomaly"
    """A line, road or district's count outside its forecast's 95% band (``forecast/``)."""
    VISITOR_ANOMALY = "visitor_anomaly"
    """A tourist site's visitors outside its forecast's 95% band (``forecast/``)."""
    CITIZEN_REPORT = "citizen_report"
    """A citizen's report (Open311: the app or the 1022 hotline); its zone is the service."""


class Severity(StrEnum):
    """Ordered from least to most severe (see :func:`severity_rank`)."""

    INFO = "info"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


_SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}


def severity_rank(severity: Severity) -> int:
    return _SEVERITY_ORDER[severity]


@dataclass(frozen=True, slots=True)
class KindProfile:
    """How one event kind is named, classified and, by default, rated."""

    title_vi: str
    title_en: str
    fiware_category: str
    fiware_subcategory: str
    cap_category: str
    cap_urgency: str
    cap_severity: str
    cap_certainty: str
    default_severity: Severity


PROFILES: dict[EventKind, KindProfile] = {
    EventKind.INTRUSION: KindProfile(
        "Xâm nhập khu vực cấm",
        "Intrusion into a restricted zone",
        "security",
        "suspiciousAction",
        "Security",
        "Immediate",
        "Severe",
        "Observed",
        Severity.MAJOR,
    ),
    EventKind.LINE_CROSSING: KindProfile(
        "Phương tiện qua vạch đếm",
        "Vehicle crossed a counting line",
        "traffic",
        "trafficFlow",
        "Transport",
        "Past",
        "Minor",
        "Observed",
        Severity.INFO,
    ),
    EventKind.CONGESTION: KindProfile(
        "Ùn tắc giao thông",
        "Traffic congestion",
        "traffic",
        "trafficJam",
        "Transport",
        "Expected",
        "Moderate",
        "Observed",
        Severity.MINOR,
    ),
    EventKind.STOPPED_VEHICLE: KindProfile(
        "Phương tiện dừng đỗ trái phép",
        "Vehicle stopped in a no-stopping zone",
        "traffic",
        "carStopped",
        "Transport",
        "Immediate",
        "Moderate",
        "Observed",
        Severity.MAJOR,
    ),
    EventKind.WRONG_WAY: KindProfile(
        "Phương tiện đi ngược chiều",
        "Vehicle driving the wrong way",
        "traffic",
        "carWrongDirection",
        "Transport",
        "Immediate",
        "Severe",
        "Observed",
        Severity.CRITICAL,
    ),
    EventKind.SPEEDING: KindProfile(
        "Phương tiện vượt quá tốc độ cho phép",
        "Vehicle over the speed limit",
        "traffic",
        "hazardOnRoad",
        "Transport",
        "Immediate",
        "Moderate",
        "Likely",
        Severity.MINOR,
    ),
    EventKind.CROWD: KindProfile(
        "Tụ tập đông người",
        "Crowding",
        "security",
        "crowdRisk",
        "Safety",
        "Expected",
        "Moderate",
        "Observed",
        Severity.MAJOR,
    ),
    EventKind.CAMERA_TAMPER: KindProfile(
        "Camera bị che, mờ hoặc xoay",
        "Camera tampered (blurred, covered or moved)",
        "security",
        "suspiciousAction",
        "Infra",
        "Expected",
        "Minor",
        "Likely",
        Severity.MAJOR,
    ),
    EventKind.CAMERA_OFFLINE: KindProfile(
        "Camera mất tín hiệu",
        "Camera offline",
        "security",
        "equipmentFailure",
        "Infra",
        "Expected",
        "Minor",
        "Observed",
        Severity.MINOR,
    ),
    EventKind.AP_DOWN: KindProfile(
        "Điểm phát Wi-Fi ngừng hoạt động",
        "Wi-Fi access point down",
        "environment",
        "equipmentFailure",
        "Infra",
        "Future",
        "Minor",
        "Observed",
        Severity.MINOR,
    ),
    EventKind.AP_OVERLOAD: KindProfile(
        "Điểm phát Wi-Fi quá tải",
        "Wi-Fi access point overloaded",
        "environment",
        "overload",
        "Infra",
        "Future",
        "Minor",
        "Observed",
        Severity.INFO,
    ),
    EventKind.DELIVERY_FAILED: KindProfile(
        "Không gửi được cảnh báo tới công an",
        "Alert delivery to police failing",
        "security",
        "equipmentFailure",
        "Infra",
        "Immediate",
        "Moderate",
        "Observed",
        Severity.CRITICAL,
    ),
    EventKind.TRAFFIC_ANOMALY: KindProfile(
        "Lưu lượng giao thông bất thường so với dự báo",
        "Traffic far from its forecast",
        "traffic",
        "trafficJam",
        "Transport",
        "Expected",
        "Moderate",
        "Likely",
        Severity.MINOR,
    ),
    EventKind.VISITOR_ANOMALY: KindProfile(
        "Lượng khách tham quan bất thường so với dự báo",
        "Visitors far from their forecast",
        "security",
        "crowdRisk",
        "Safety",
        "Expected",
        "Moderate",
        "Likely",
        Severity.MINOR,
    ),
    EventKind.CITIZEN_REPORT: KindProfile(
        "Phản ánh của người dân",
        "Citizen report",
        "traffic",
        "hazardOnRoad",
        "Safety",
        "Expected",
        "Moderate",
        "Likely",  # a citizen's word, not yet confirmed by a camera
        Severity.MINOR,
    ),
}
