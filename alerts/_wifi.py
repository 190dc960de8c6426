"""Access-point alerts derived from Wi-Fi telemetry: ap_down and ap_overload.

Each AP's last known condition is kept in memory (seeded from the open alerts at start), so
the per-batch work is a pass over its samples with no database access; only a change of
condition (down/up, overloaded/cleared) becomes an observation for the alerts table.
Overload has hysteresis: it starts above capacity x ``overload_ratio`` and ends at or below
capacity x ``clear_ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import EventKind, Province, TelemetryBatch
from store import Connection

from ._model import Observation
from ._rules import AccessPointRules

AP_KINDS = (EventKind.AP_DOWN, EventKind.AP_OVERLOAD)


@dataclass(frozen=True, slots=True)
class ApCondition:
    down: bool = False
    overloaded: bool = False


class AccessPointWatch:
    def __init__(self, province: Province) -> None:
        self.capacity = {ap.id: ap.capacity for ap in province.access_points}
        self.districts = {ap.id: province.district_id(ap.district) for ap in province.access_points}
        self.conditions: dict[str, ApCondition] = {}

    async def seed(self, conn: Connection) -> None:
        """Take the conditions that open, uncleared AP alerts stand for."""
        records = await conn.fetch(
            """SELECT source_id, kind FROM alerts
               WHERE kind = ANY($1::text[]) AND state <> 'resolved' AND cleared_at IS NULL""",
            [str(k) for k in AP_KINDS],
        )
        for r in records:
            now = self.conditions.get(r["source_id"], ApCondition())
            if r["kind"] == EventKind.AP_DOWN:
                now = ApCondition(True, now.overloaded)
            else:
                now = ApCondition(now.down, True)
            self.conditions[r["source_id"]] = now

    def district(self, ap_id: str) -> str:
        return self.districts.get(ap_id, "unknown")

    def assess(
        self, batch: TelemetryBatch, limits: AccessPointRules
    ) -> tuple[list[Observation], ApCondition]:
        """The changes of condition in this batch, and the condition after it. Nothing is
        remembered until :meth:`commit`: a batch whose changes were not stored is redelivered
        and assessed again."""
        ap = batch.ap_id
        condition = self.conditions.get(ap, ApCondition())
        capacity = self.capacity.get(ap)
        observations: list[Observation] = []
        for sample in sorted(batch.samples, key=lambda s: s.ts):
            down = not sample.up
            if down != condition.down:
                observations.append(_observation(ap, EventKind.AP_DOWN, down, sample.ts))
            overloaded = condition.overloaded
            if capacity is not None:
                if not overloaded and sample.clients > capacity * limits.overload_ratio:
                    overloaded = True
                elif overloaded and sample.clients <= capacity * limits.clear_ratio:
                    overloaded = False
            if overloaded != condition.overloaded:
                observations.append(_observation(ap, EventKind.AP_OVERLOAD, overloaded, sample.ts))
            condition = ApCondition(down, overloaded)
        return observations, condition

    def commit(self, ap_id: str, condition: ApCondition) -> None:
        self.conditions[ap_id] = condition


def _observation(ap_id: str, kind: EventKind, starts: bool, ts: float) -> Observation:
    return Observation(
        event_id=f"{ap_id}:{kind}:{ts:.3f}",
        kind=kind,
        source_id=ap_id,
        zone_id=None,
        phase="start" if starts else "end",
        at=ts,
    )
