"""The FIWARE feeds against the Smart Data Models' own JSON Schemas (vendored, CC BY 4.0, in
tests/data/smart-data-models): every alert kind x severity, and traffic flows, each NGSI-LD
normalized entity turned into key-values first, as an outside check does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from alerts import AlertView
from console_api._fiware import alert_entity, traffic_flow_entities
from console_api._planner import Point, Series
from protocol import EventKind, Severity

SCHEMAS = Path(__file__).parent / "data" / "smart-data-models"


def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    # Alert/schema.json names itself by its old folder ("alert/schema.json").
    return Registry().with_resources(resources)


REGISTRY = _registry()


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, registry=REGISTRY, format_checker=FormatChecker())


def key_values(entity: dict[str, Any]) -> dict[str, Any]:
    """NGSI-LD normalized to key-values: a Property's value (a DateTime's @value), a
    GeoProperty's GeoJSON, a Relationship's object; @context dropped."""
    out: dict[str, Any] = {}
    for name, attribute in entity.items():
        if name == "@context":
            continue
        if not isinstance(attribute, dict):
            out[name] = attribute
        elif attribute.get("type") == "Relationship":
            out[name] = attribute["object"]
        else:
            value = attribute["value"]
            if isinstance(value, dict) and value.get("@type") == "DateTime":
                value = value["@value"]
            out[name] = value
    return out


def _alert(kind: EventKind, severity: Severity, resolved: bool) -> AlertView:
    now = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    return AlertView(
        id="7b1c1f4e-8d7a-4a0e-9f57-2f9d3c1b6a10",
        incident_id="0d6f3c9e-2b1a-4c55-8e0f-6a7b8c9d0e1f",
        kind=str(kind),
        source_id="mt-ql1a-01",
        zone_id="shoulder",
        district_id="my-tho",
        severity=str(severity),
        state="resolved" if resolved else "open",
        title_vi="Tiêu đề",
        title_en="Title",
        count=2,
        opened_at=now,
        last_seen_at=now,
        cleared_at=None,
        acknowledged_by=None,
        assigned_to=None,
        resolved_at=now + timedelta(minutes=5) if resolved else None,
        first_frame_captured_at=None,
        updated_at=now,
    )


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_alert_kind_and_severity_is_a_valid_alert(kind: EventKind) -> None:
    validator = _validator("Alert.schema.json")
    for severity in Severity:
        for resolved in (False, True):
            entity = alert_entity(
                _alert(kind, severity, resolved), (106.37123, 10.35712), "TP. Mỹ Tho", "vi"
            )
            errors = [e.message for e in validator.iter_errors(key_values(entity))]
            assert errors == [], (kind, severity, errors)
            assert ("subCategory" in entity) != ("iocSubCategory" in entity)


def test_the_subcategories_we_use_are_in_the_models_enum() -> None:
    schema = json.loads((SCHEMAS / "Alert.schema.json").read_text(encoding="utf-8"))
    enum = set(schema["allOf"][-1]["properties"]["subCategory"]["anyOf"][0]["enum"])
    from console_api._fiware import MODEL_SUBCATEGORIES

    assert enum >= MODEL_SUBCATEGORIES


def test_traffic_flows_are_valid_and_the_running_hour_is_left_out() -> None:
    validator = _validator("TrafficFlowObserved.schema.json")
    now = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    hours = [now.replace(minute=0) - timedelta(hours=h) for h in (2, 1, 0)]
    series = Series(
        key={"camera_id": "cam-a", "line_id": "count-nb", "direction": "forward"},
        points=[Point(t, 40) for t in hours],
    )
    entities = traffic_flow_entities(series, "hour", (106.3712, 10.3571), "QL1A", now=now)
    assert len(entities) == 2  # 09:00-10:00 is still running at 09:30
    for entity in entities:
        flat = key_values(entity)
        assert validator.is_valid(flat), [e.message for e in validator.iter_errors(flat)]
        start, end = flat["dateObserved"].split("/")
        assert datetime.fromisoformat(end) <= now
        assert start == flat["dateObservedFrom"]
        assert end == flat["dateObservedTo"]
