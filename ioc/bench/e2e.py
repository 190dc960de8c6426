"""``ioc bench e2e``: the whole province on this machine, frame published -> alert on the
operators' websockets.

Everything runs as in production, each service in its own process (``_province.py``): the
simulator publishes 200 cameras at 5 fps (the real clips) and 500 access points with
scripted incidents; two vision shards, the alerts service (police through its outbox to a
local receiver), ingest and the console API do their work over Mosquitto and a durable
PostgreSQL. After a warm-up, for ``seconds``:

- latency of every new alert decided by a frame captured in the window: from the moment
  the simulator stamped and published that frame to the moment each operator's websocket
  client had the alert (one wall clock for all processes of the machine); and to the police
  receiver's first CAP ``Alert`` of the incident;
- frames published and analysed per second (the services' own counters), and the frames
  not analysed (``dropped_frames_pct``);
- ingest lag of every telemetry batch stored in the window: its commit against its sequence
  number, which the edge takes from its clock in milliseconds when it spools the batch;
- CPU (percent of one core) and memory of every process, the broker and the database too.

Then the simulator and vision stop, and the run drains: samples the broker accepted (an
independent witness subscribed to them) against rows stored, ``lost_samples``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from ._files import Size
from ._meter import ProcessMeter
from ._operators import NewAlert
from ._province import ProvinceRun, progress
from ._reconcile import drain

say = progress("bench e2e")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 1)


def _latency(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 0.50),
        "p95_ms": percentile(values, 0.95),
        "p99_ms": percentile(values, 0.99),
        "max_ms": round(max(values), 1) if values else None,
    }


async def _ingest_lag(url: str, since: float, until: float) -> dict[str, float | None]:
    """Commit (the batch's transaction time) minus the edge's spooling time (its sequence
    number, milliseconds of its clock), for telemetry batches stored in the window."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99,
                      max(lag) AS worst
               FROM (SELECT 1000 * extract(epoch FROM received_at) - seq AS lag
                     FROM ingest_batches
                     WHERE source LIKE 'wifi:%'
                       AND received_at >= to_timestamp($1) AND received_at < to_timestamp($2)) b""",
            since,
            until,
        )
    finally:
        await conn.close()
    if row is None:
        raise RuntimeError("an aggregate answered no row")
    return {k: None if row[k] is None else round(float(row[k]), 1) for k in ("p50", "p99", "worst")}


async def _alerts_decided(url: str, since: float, until: float) -> set[str]:
    """The alerts that frames captured in [since, until) opened, as the database has them."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT id::text AS id FROM alerts
               WHERE first_frame_captured_at >= to_timestamp($1)
                 AND first_frame_captured_at < to_timestamp($2)
                 AND kind <> ALL($3)""",
            since,
            until,
            ["camera_offline", "ap_down", "ap_overload", "delivery_failed"],
        )
        return {r["id"] for r in rows}
    finally:
        await conn.close()


async def _stages(
    url: str, new: list[NewAlert], witnessed: dict[tuple[str, str], float]
) -> dict[str, dict[str, float | int | None]]:
    """Where the time of each new alert went, on the one wall clock: vision (frame
    published -> its event reached a subscriber of the broker, the witness), the alerts
    service's queue (-> its transaction began, ``events.received_at``), and the rest
    (transaction, commit, NOTIFY, the API's change feed, the websocket)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT a.id::text AS id, a.first_event_id,
                      extract(epoch FROM e.received_at)::float8 AS began
               FROM alerts a JOIN events e ON e.event_id = a.first_event_id AND e.phase = 'start'
               WHERE a.id = ANY($1::uuid[])""",
            list({a.alert_id for a in new}),
        )
    finally:
        await conn.close()
    began = {r["id"]: (r["first_event_id"], r["began"]) for r in rows}
    vision, queue, rest = [], [], []
    for alert in new:
        if alert.alert_id not in began:
            continue
        event_id, tx = began[alert.alert_id]
        seen = witnessed.get((event_id, "start"))
        received = alert.captured_at + alert.latency_ms / 1000
        if seen is not None:
            vision.append((seen - alert.captured_at) * 1000)
            queue.append((tx - seen) * 1000)
        rest.append((received - tx) * 1000)
    return {
        "vision_ms": _latency(vision),
        "alerts_queue_ms": _latency(queue),
        "commit_to_operator_ms": _latency(rest),
    }


async def _measure(run: ProvinceRun, warmup: float, seconds: float) -> dict[str, Any]:
    say(f"warming up for {warmup:g} s (cameras learn their backgrounds, the first alerts open)")
    await asyncio.sleep(warmup)  # pacing the run, not waiting for a result
    since, start = time.time(), run.meter.read()
    load_before = os.getloadavg()[0]
    for elapsed in range(0, int(seconds), 10):
        await asyncio.sleep(min(10.0, seconds - elapsed))
        seen = [a.latency_ms for a in run.operators.new_alerts(since, time.time())]
        say(
            f"{elapsed + min(10, int(seconds) - elapsed)} of {seconds:g} s: {len(seen)} new "
            f"alerts seen by the operators, p99 so far {percentile(seen, 0.99)} ms"
        )
    until, end = time.time(), run.meter.read()
    statuses = run.statuses
    published = statuses.rate("simulator", "frames_published", since, until)
    analysed = statuses.rate("vision", "frames_processed", since, until)
    received = statuses.rate("vision", "frames_received", since, until)
    dropped = statuses.rate("vision", "frames_dropped", since, until)
    return {
        "since": since,
        "until": until,
        "frames_published_per_s": round(published, 1),
        "frames_analysed_per_s": round(analysed, 1),
        "dropped_frames_pct": round(100 * max(0.0, 1 - analysed / published), 2)
        if published
        else None,
        "vision_replaced_frames_pct": round(100 * dropped / received, 2) if received else None,
        "services": ProcessMeter.usage(start, end),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


async def bench(size: Size, seconds: float, warmup: float, drain_deadline: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ioc-bench-e2e-") as root:
        async with ProvinceRun(Path(root), size, seconds=warmup + seconds + 60, say=say) as run:
            measured = await _measure(run, warmup, seconds)
            say("stopping the simulator and vision; draining what the broker accepted")
            await run.service("simulator").stop()
            for i in range(1, size.vision_shards + 1):
                await run.service(f"vision-{i}").stop()
            url = run.database_url
            result, took = await drain(
                url,
                run.witness.seen,
                run.police.tally,
                run.routes,
                run.operators,
                deadline=drain_deadline,
            )
            say(f"drained in {took:.1f} s: {json.dumps(result.as_dict())}")
            since, until = measured["since"], measured["until"]
            lag = await _ingest_lag(url, since, until)
            decided = await _alerts_decided(url, since, until)
            # After the drain: an alert whose frame was captured just before the window
            # closed, committed just after, counts with its latency.
            new = run.operators.new_alerts(since, until)
            stages = await _stages(url, new, run.witness.seen.events)
    latency = _latency([a.latency_ms for a in new])
    captured = {a.alert_id: a.captured_at for a in new}
    police = _latency(
        [
            (at - captured[alert]) * 1000
            for alert, at in run.police.tally.first_alert_at.items()
            if alert in captured
        ]
    )
    kinds: dict[str, list[float]] = {}
    for alert in new:
        kinds.setdefault(alert.kind, []).append(alert.latency_ms)
    received_by_each = min(
        (len({a.alert_id for a in v.new_alerts} & decided) for v in run.operators.views),
        default=0,
    )
    return {
        "bench": "e2e",
        "cameras": size.cameras,
        "fps": size.fps,
        "access_points": size.access_points,
        "vision_shards": size.vision_shards,
        "operators": size.operators,
        "seconds": seconds,
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        "p99_ms": latency["p99_ms"],
        "max_ms": latency["max_ms"],
        "latency_samples": latency["n"],
        "new_alerts": len(decided),
        "new_alerts_received_by_each_operator": received_by_each,
        "by_kind": {k: _latency(v) for k, v in sorted(kinds.items())},
        "stages": stages,
        "police_first_message": police,
        "dropped_frames_pct": measured["dropped_frames_pct"],
        "vision_replaced_frames_pct": measured["vision_replaced_frames_pct"],
        "frames_published_per_s": measured["frames_published_per_s"],
        "frames_analysed_per_s": measured["frames_analysed_per_s"],
        "ingest_lag_ms": lag["p99"],
        "ingest_lag_p50_ms": lag["p50"],
        "ingest_lag_max_ms": lag["worst"],
        "lost_samples": result.lost_samples,
        "samples_sent": result.samples_sent,
        "samples_stored": result.samples_stored,
        "duplicate_sample_rows": result.duplicate_sample_rows,
        "drain_s": round(took, 1),
        "services": measured["services"],
        "load_average": measured["load_average"],
        "target_p99_ms": 500,
    }


def main(size: Size, seconds: float, warmup: float, drain_deadline: float) -> None:
    result = asyncio.run(bench(size, seconds, warmup, drain_deadline))
    sys.stdout.write(json.dumps(result) + "\n")
