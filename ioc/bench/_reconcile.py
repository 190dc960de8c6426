"""What a whole-province run sent against what the centre kept: telemetry samples, vision
events, police messages and the operators' change stream, with duplicates of each.

Every number is read at one moment; :func:`drain` reads again until nothing is missing
or the deadline passes, since the services may still be working through a backlog."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from protocol import Severity, severity_rank

from ._operators import Operators
from ._police import PoliceTally
from ._witness import Witnessed


@dataclass(frozen=True, slots=True)
class Reconciliation:
    samples_sent: int
    """Telemetry samples in the distinct batches the broker accepted (the witness's view)."""
    samples_stored: int
    lost_samples: int
    duplicate_sample_rows: int
    batches_sent: int
    batches_stored: int
    events_sent: int
    """Distinct (event id, phase) of vision events the broker accepted."""
    lost_events: int
    events_stored: int
    """Distinct (event id, phase) in the store."""
    duplicate_event_rows: int
    alerts: int
    police_incidents: int
    """Alerts for which a CAP ``Alert`` was staged for the police."""
    police_messages_staged: int
    police_messages_received: int
    lost_police_messages: int
    """Staged deliveries the receiver never processed (pending, or claimed delivered)."""
    police_duplicates: int
    """CAP messages the receiver processed twice (under two webhook ids)."""
    police_redeliveries: int
    """Retries of an id already processed (a lost answer); not acted on twice."""
    police_bad_signatures: int
    police_alerts_missing: int
    """Alerts that the police route admits, never muted, with no CAP ``Alert`` staged."""
    mqtt_outbox_pending: int
    changes: int
    ws_missed_changes: int
    """Changes in the log after an operator subscribed that the operator never received."""
    ws_repeated_changes: int
    ws_out_of_order: int
    dead_letters: int

    def losses(self) -> dict[str, int]:
        """The numbers that must be zero for a run without loss or duplicate in effect."""
        names = (
            "lost_samples",
            "duplicate_sample_rows",
            "lost_events",
            "lost_police_messages",
            "police_duplicates",
            "police_bad_signatures",
            "police_alerts_missing",
            "mqtt_outbox_pending",
            "ws_missed_changes",
            "ws_repeated_changes",
            "ws_out_of_order",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n)}

    def missing(self) -> bool:
        """Something sent is not (yet) where it must arrive; duplicates are not waited on."""
        return bool(
            self.lost_samples
            or self.lost_events
            or self.lost_police_messages
            or self.police_alerts_missing
            or self.mqtt_outbox_pending
            or self.ws_missed_changes
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def reconcile(
    conn: asyncpg.Connection,
    witnessed: Witnessed,
    police: PoliceTally,
    police_route: dict[str, Any],
    operators: Operators,
) -> Reconciliation:
    batches = {
        (r["source"].removeprefix("wifi:"), r["seq"])
        for r in await conn.fetch(
            "SELECT source, seq FROM ingest_batches WHERE source LIKE 'wifi:%'"
        )
    }
    samples = await conn.fetchrow(
        """SELECT count(*) AS rows, count(DISTINCT (ap_id, ts)) AS distinct_rows
           FROM wifi_samples"""
    )
    if samples is None:
        raise RuntimeError("count(*) answered no row")
    missing_batches = {k: n for k, n in witnessed.batches.items() if k not in batches}
    events = {
        (r["event_id"], r["phase"]) for r in await conn.fetch("SELECT event_id, phase FROM events")
    }
    event_rows: int = await conn.fetchval("SELECT count(*) FROM events")
    staged = await conn.fetch(
        """SELECT d.webhook_id, d.status, m.msg_type FROM police_deliveries d
           JOIN cap_messages m USING (identifier)"""
    )
    received = set(police.processed)
    kinds = list(police_route.get("kinds") or [])
    floor = severity_rank(Severity(police_route.get("min_severity", "info")))
    admitted = [str(s) for s in Severity if severity_rank(s) >= floor]
    missing_alerts: int = await conn.fetchval(
        """SELECT count(*) FROM alerts a
           WHERE (cardinality($1::text[]) = 0 OR a.kind = ANY($1)) AND a.severity = ANY($2)
             AND a.suppressed_by IS NULL
             AND NOT EXISTS (SELECT 1 FROM cap_messages m
                             WHERE m.alert_id = a.id AND m.msg_type = 'Alert')
             AND NOT EXISTS (SELECT 1 FROM alert_audit u
                             WHERE u.alert_id = a.id AND u.action IN ('mute', 'unmute'))""",
        kinds,
        admitted,
    )
    change_seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM alert_changes")]
    missed = 0
    for view in operators.views:
        if view.start_seq is not None:
            missed += sum(1 for s in change_seqs if s > view.start_seq and s not in view.seqs)
    return Reconciliation(
        samples_sent=witnessed.samples,
        samples_stored=samples["distinct_rows"],
        lost_samples=max(
            witnessed.samples - samples["distinct_rows"], sum(missing_batches.values())
        ),
        duplicate_sample_rows=samples["rows"] - samples["distinct_rows"],
        batches_sent=len(witnessed.batches),
        batches_stored=len(batches),
        events_sent=len(witnessed.events),
        lost_events=len(witnessed.events.keys() - events),
        events_stored=len(events),
        duplicate_event_rows=event_rows - len(events),
        alerts=await conn.fetchval("SELECT count(*) FROM alerts"),
        police_incidents=len({r["webhook_id"] for r in staged if r["msg_type"] == "Alert"}),
        police_messages_staged=len(staged),
        police_messages_received=len(received),
        lost_police_messages=sum(1 for r in staged if r["webhook_id"] not in received),
        police_duplicates=police.duplicate_messages(),
        police_redeliveries=police.redeliveries,
        police_bad_signatures=police.bad_signatures,
        police_alerts_missing=missing_alerts,
        mqtt_outbox_pending=await conn.fetchval("SELECT count(*) FROM mqtt_outbox"),
        changes=len(change_seqs),
        ws_missed_changes=missed,
        ws_repeated_changes=sum(v.repeated for v in operators.views),
        ws_out_of_order=sum(v.out_of_order for v in operators.views),
        dead_letters=await conn.fetchval("SELECT count(*) FROM dead_letters"),
    )


async def drain(
    url: str,
    witnessed: Witnessed,
    police: PoliceTally,
    police_route: dict[str, Any],
    operators: Operators,
    *,
    deadline: float,
    every: float = 0.5,
) -> tuple[Reconciliation, float]:
    """Reconcile until nothing is missing or ``deadline`` seconds passed; returns the last
    reading and the seconds it took. Reading again every ``every`` seconds is how a backlog
    is waited for here: the services are other processes, with no event to wait on."""
    started = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        while True:
            result = await reconcile(conn, witnessed, police, police_route, operators)
            if not result.missing() or time.monotonic() - started > deadline:
                return result, time.monotonic() - started
            await asyncio.sleep(every)
    finally:
        await conn.close()
