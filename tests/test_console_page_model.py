"""The page's incident model (console_api/static/incidents.js), run in node: alerts grouped
by incident_id (an alert without one is its own incident), the highest severity, the least
advanced state, unacknowledged first in the operator's order, one incident touched per
change."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

MODEL = Path(__file__).resolve().parent.parent / "console_api" / "static" / "incidents.js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def _run(script: str) -> Any:
    """Run ``script`` in node with the model loaded; what it prints, as JSON."""
    assert NODE is not None
    program = f"const m = require({json.dumps(str(MODEL))});\n{script}"
    result = subprocess.run(
        [NODE, "-e", program], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(result.stdout)


def _alert(id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "kind": "intrusion",
        "source_id": "cam-a",
        "zone_id": "shoulder",
        "district_id": "my-tho",
        "severity": "minor",
        "state": "open",
        "title_vi": "v",
        "title_en": "e",
        "count": 1,
        "opened_at": "2026-12-04T10:00:00+00:00",
        "updated_at": "2026-12-04T10:00:00+00:00",
        "acknowledged_by": None,
        "assigned_to": None,
        **fields,
    }


def test_alerts_of_one_incident_make_one_row_with_its_worst_severity_and_first_state() -> None:
    alerts = [
        _alert("a1", incident_id="i1", severity="minor", state="assigned", count=2),
        _alert(
            "a2",
            incident_id="i1",
            severity="critical",
            state="acknowledged",
            kind="crowd",
            lat=10.3,
            lon=106.3,
        ),
        _alert("a3"),
    ]
    out = _run(f"""
const book = new m.IncidentBook();
book.reset({json.dumps(alerts)});
console.log(JSON.stringify([book.sorted().map(i => i.id), book.get("i1"), book.counts()]));
""")
    order, incident, counts = out
    assert sorted(order) == ["a3", "i1"]
    assert incident["severity"] == "critical"
    assert incident["state"] == "acknowledged"
    assert incident["unacknowledged"] is False
    assert incident["alert_ids"] == ["a1", "a2"]
    assert incident["count"] == 3
    assert sorted(incident["kinds"]) == ["crowd", "intrusion"]
    assert [incident["lat"], incident["lon"]] == [10.3, 106.3]
    assert incident["assigned_to"] is None
    assert counts == {"critical": 1, "major": 0, "minor": 1, "info": 0}


def test_the_order_is_unacknowledged_then_severity_then_the_longest_waiting() -> None:
    alerts = [
        _alert("acked-critical", severity="critical", state="acknowledged"),
        _alert("new-minor", severity="minor", opened_at="2026-12-04T10:05:00+00:00"),
        _alert("old-minor", severity="minor", opened_at="2026-12-04T09:00:00+00:00"),
        _alert("major", severity="major", opened_at="2026-12-04T11:00:00+00:00"),
    ]
    out = _run(f"""
const book = new m.IncidentBook();
book.reset({json.dumps(alerts)});
console.log(JSON.stringify(book.sorted().map(i => i.id)));
""")
    assert out == ["major", "old-minor", "new-minor", "acked-critical"]


def test_a_change_touches_its_incident_and_a_resolved_alert_leaves_it() -> None:
    out = _run(f"""
const book = new m.IncidentBook();
book.reset({
        json.dumps(
            [
                _alert("a1", incident_id="i1"),
                _alert("a2", incident_id="i1"),
                _alert("b1", incident_id="i2"),
            ]
        )
    });
const before = book.sorted();
const touched = [...book.put({json.dumps(_alert("a1", incident_id="i1", count=5))})];
const count = book.get("i1").count;
const reordered = book.sorted() !== before;
const repeat = book.sorted();
book.put({json.dumps(_alert("b1", incident_id="i2", count=7))});
const kept = book.sorted() === repeat && book.sorted().find(i => i.id === "i2").count === 7;
const moved = [...book.put({json.dumps(_alert("a2", incident_id="i2"))})].sort();
const resolved = [...book.put({json.dumps(_alert("a1", incident_id="i1", state="resolved"))})];
console.log(JSON.stringify([touched, count, reordered, kept, moved, resolved,
  book.get("i1") ?? null, book.get("i2").alert_ids]));
""")
    touched, count, reordered, kept, moved, resolved, gone, i2 = out
    assert touched == ["i1"]
    assert count == 6
    assert reordered is False  # a repeat keeps its place: the order is patched, not sorted
    assert kept is True
    assert moved == ["i1", "i2"]
    assert resolved == ["i1"]
    assert gone is None
    assert i2 == ["b1", "a2"]
