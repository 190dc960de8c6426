"""Peak memory of one FIWARE ``TrafficFlowObserved`` answer (issue 17, item 7).

The answer is built as Python objects (one dict tree per entity) and then encoded. This
measures, with tracemalloc, the peak of building and encoding ``points`` entities, the same
code path as the endpoint (``traffic_flow_entities`` and ``json_response``) over synthetic
counts; the per-entity cost gives what the history endpoints' 250,000-point bound would
cost, which is why the feed stops at ``MAX_ENTITIES``.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from console_api._fiware import MAX_ENTITIES, traffic_flow_entities
from console_api._history import MAX_POINTS as HISTORY_POINTS
from console_api._openapi import json_response
from console_api._planner import Point, Series


def _series(points: int) -> list[Series]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    per_series = 1_000
    return [
        Series(
            key={"camera_id": f"cam-{i:03d}", "line_id": "count-nb", "direction": "inbound"},
            points=[
                Point(start + timedelta(hours=h), 1 + h % 50)
                for h in range(min(per_series, points - i * per_series))
            ],
        )
        for i in range((points + per_series - 1) // per_series)
    ]


def measure(points: int) -> dict[str, Any]:
    """Peak bytes of building and encoding one answer of ``points`` entities."""
    series = _series(points)
    gc.collect()
    tracemalloc.start()
    try:
        entities = []
        for s in series:
            entities.extend(
                traffic_flow_entities(s, "hour", (106.37, 10.36), "Cầu Rạch Miễu", now=None)
            )
        body = json_response(entities, media_type="application/ld+json").body
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if len(entities) != points:
        raise RuntimeError(f"built {len(entities)} entities, not {points}")
    return {
        "entities": points,
        "peak_mib": round(peak / 2**20, 1),
        "bytes_per_entity": round(peak / points),
        "body_mib": round(len(body) / 2**20, 1),
    }


def main(points: int = MAX_ENTITIES) -> None:
    result = measure(points)
    result["max_entities"] = MAX_ENTITIES
    result["estimated_peak_mib_at_history_bound"] = round(
        result["bytes_per_entity"] * HISTORY_POINTS / 2**20
    )
    print(json.dumps(result))
