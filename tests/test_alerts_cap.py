"""CAP 1.2 rendering on its own: every kind validates against the OASIS schema (kept
byte-identical), times carry +07:00, severity follows the rules when they rate higher."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from conftest import DATA
from lxml import etree

from alerts import CAP_NS, AlertView, render_cap
from alerts._cap import CapHeader, Location, Reference, cap_severity, cap_time
from protocol import PROFILES, EventKind

XSD = DATA / "cap" / "CAP-v1.2.xsd"
SCHEMA = etree.XMLSchema(etree.parse(str(XSD)))
NS = {"cap": CAP_NS}
OPENED = datetime(2026, 11, 25, 15, 30, 12, 345678, tzinfo=UTC)


def _alert(kind: EventKind, severity: str = "major") -> AlertView:
    profile = PROFILES[kind]
    return AlertView(
        id="0b6f4a4e-8f7c-4d59-9d1e-2c3f6b1a0e11",
        kind=str(kind),
        source_id="traffic-ql1a-my-tho-01",
        zone_id="shoulder",
        district_id="my-tho",
        severity=severity,
        state="open",
        title_vi=profile.title_vi,
        title_en=profile.title_en,
        count=3,
        opened_at=OPENED,
        last_seen_at=OPENED,
        cleared_at=None,
        acknowledged_by=None,
        assigned_to=None,
        resolved_at=None,
        first_frame_captured_at=None,
        updated_at=OPENED,
        incident_id="7d1c5b9e-3f2a-4c8d-9e6f-1a2b3c4d5e6f",
    )


def test_the_vendored_schema_is_the_oasis_file() -> None:
    # SOURCES.md beside it: the schema must stay byte-identical.
    digest = hashlib.sha256(XSD.read_bytes()).hexdigest()
    assert digest == "b7798ef25868b068c97b268bda02d067c7d4ba9373adc5638bf37105804ee723"


@pytest.mark.parametrize("kind", list(EventKind))
@pytest.mark.parametrize("msg_type", ["Alert", "Update", "Cancel"])
def test_every_kind_and_message_type_validates(kind: EventKind, msg_type: str) -> None:
    where = Location("QL1A - cầu Rạch Miễu", 10.3571, 106.3712, "TP. Mỹ Tho")
    earlier = [Reference("ioc.test", "0b6f.1", OPENED)] if msg_type != "Alert" else []
    header = CapHeader(
        identifier=f"0b6f.{len(earlier) + 1}",
        sender="ioc.test",
        sender_name="IOC <Tiền Giang> & co",
        sent=OPENED,
        msg_type=msg_type,  # type: ignore[arg-type]  # parametrised over the Literal's values
        references=earlier,
        note="resolved by op1: ok" if msg_type == "Cancel" else None,
    )
    body = render_cap(
        _alert(kind), where if kind != "delivery_failed" else None, header, radius_km=0.25
    )
    doc = etree.fromstring(body)
    SCHEMA.assertValid(doc)
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert doc.findtext("cap:sent", namespaces=NS) == "2026-11-25T22:30:12+07:00"
    if earlier:
        assert doc.findtext("cap:references", namespaces=NS) == (
            "ioc.test,0b6f.1,2026-11-25T22:30:12+07:00"
        )
    vi, en = doc.findall("cap:info", NS)
    assert vi.findtext("cap:language", namespaces=NS) == "vi-VN"
    assert en.findtext("cap:language", namespaces=NS) == "en-US"
    area = en.find("cap:area", NS)
    assert area is not None
    if kind != "delivery_failed":
        assert area.findtext("cap:areaDesc", namespaces=NS) == "TP. Mỹ Tho"
        assert area.findtext("cap:circle", namespaces=NS) == "10.35710,106.37120 0.25"
    else:
        assert area.findtext("cap:areaDesc", namespaces=NS) == "my-tho"
        assert area.find("cap:circle", NS) is None


def test_severity_is_raised_by_the_rules_never_lowered() -> None:
    # Congestion is Moderate by kind; rated critical it becomes Extreme.
    assert cap_severity(_alert(EventKind.CONGESTION, "minor")) == "Moderate"
    assert cap_severity(_alert(EventKind.CONGESTION, "critical")) == "Extreme"
    # Intrusion is Severe by kind; rated info it stays Severe.
    assert cap_severity(_alert(EventKind.INTRUSION, "info")) == "Severe"
    assert cap_time(datetime(2026, 1, 1, 17, 0, 0, 999_999, tzinfo=UTC)) == (
        "2026-01-02T00:00:00+07:00"
    )
