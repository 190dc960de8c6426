"""``ioc bench page``: the operations-room page under a storm of alert changes.

The province's registry and 1,000 open alerts across it (the alerts' own repository, as the
engine writes them), then 50 alert changes a second for 30 s, one transaction each, while
headless Chromium (Debian's, through Playwright, as the page tests drive it) shows the page
to an operator at 1600x1000. The page is measured from inside: a ``MutationObserver`` notes
when each change's row first shows it (its alert id and count: ``data-alerts`` on our rows,
the count after the title on the old table), a ``PerformanceObserver`` collects long tasks,
and Chromium's own counters give the main thread's busy time and the JS heap. The changes
go to the 10 most urgent alerts (critical, unacknowledged), whose rows both pages show at
the top of the screen, so every change has a row in view to appear in.

``--baseline-static DIR`` first measures the page in DIR (e.g. the previous release's
``console_api/static``) the same way, in the same run, and reports it beside ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from playwright.async_api import CDPSession, async_playwright

from alerts import Observation
from alerts._repository import observe, record_change
from console_api import Role, _page, add_user, create_app
from protocol import EventKind, Severity, load_province
from store import ALL_MIGRATIONS, StoreConfig, migrate, sync_registry

from ..servers import PostgresCluster
from ..settings import DEFAULT_PROVINCE

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
PASSWORD = "bench password, not secret"  # noqa: S105  # a throw-away cluster's user
SETTLE = 2.0
"""Seconds after the last change for it to reach the screen (a later one counts as then)."""
HOT = 10
"""Alerts the changes go to: the most urgent, on screen in both pages."""
SEVERITIES = [Severity.MAJOR, Severity.MINOR, Severity.INFO]
KINDS = [EventKind.INTRUSION, EventKind.STOPPED_VEHICLE, EventKind.WRONG_WAY, EventKind.CONGESTION]

# Installed before the page's own scripts: note when each (alert id, count) first shows.
_OBSERVER = """
window.__bench = { seen: new Set(), hot: new Set(%s) };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__benchLongTask(e.startTime, e.duration);
}).observe({ type: "longtask", buffered: true });
document.addEventListener("DOMContentLoaded", () => {
  const bench = window.__bench;
  const note = (row, now) => {
    if (row.dataset.alerts !== undefined) {
      for (const key of row.dataset.alerts.split(" ")) {
        if (bench.hot.has(key.split(":")[0]) && !bench.seen.has(key)) {
          bench.seen.add(key);
          window.__benchSeen(key, now);
        }
      }
    } else if (bench.hot.has(row.dataset.alertId)) {
      const count = /\\u00d7(\\d+)/.exec(row.textContent);
      const key = `${row.dataset.alertId}:${count ? count[1] : 1}`;
      if (!bench.seen.has(key)) { bench.seen.add(key); window.__benchSeen(key, now); }
    }
  };
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    const rows = new Set();
    for (const r of records) {
      const target = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      const row = target && target.closest("[data-alerts], tr[data-alert-id]");
      if (row) rows.add(row);
      for (const n of r.addedNodes) {
        if (n.nodeType === 1 && n.matches("[data-alerts], tr[data-alert-id]")) rows.add(n);
      }
    }
    for (const row of rows) note(row, now);
  }).observe(document.body,
    { subtree: true, childList: true, attributes: true, characterData: true });
});
"""


def _say(message: str) -> None:
    sys.stderr.write(f"[bench page] {message}\n")
    sys.stderr.flush()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


# --- the server process (one per page measured) ------------------------------------------


def _serve(url: str, static: str | None, report: multiprocessing.connection.Connection) -> None:
    if static is not None:
        # The baseline: the same API serving another page (only this bench does this).
        _page.STATIC = Path(static)
    app = create_app(StoreConfig(url=url, max_size=10))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    report.send(sock.getsockname()[1])
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, ws_per_message_deflate=False
    )
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def _server(url: str, static: str | None) -> Iterator[str]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(url, static, theirs), daemon=True)
    process.start()
    try:
        yield f"127.0.0.1:{ours.recv()}"
    finally:
        process.terminate()
        process.join(30)


# --- the alerts --------------------------------------------------------------------------


def _observation(camera: str, zone: str | None, kind: EventKind, n: int) -> Observation:
    return Observation(
        event_id=f"bench-page:{n}",
        kind=kind,
        source_id=camera,
        zone_id=zone,
        phase="start",
        at=time.time(),
    )


Place = tuple[str, str | None, EventKind, str]
"""Where an alert is: camera, zone, kind, district."""


async def _seed(url: str, alerts: int) -> list[Place]:
    """The registry, an operator, ``alerts`` open alerts; the hot ones' (camera, zone,
    kind, district), which the storm repeats."""
    province = load_province(DEFAULT_PROVINCE)
    places: list[Place] = [
        (c.id, zone.id, kind, c.district)
        for c in province.cameras
        for zone in c.zones
        for kind in KINDS
    ]
    if len(places) < alerts:
        raise ValueError(f"the province has room for {len(places)} alerts, not {alerts}")
    # Spread over the province: every camera before a second alert on any.
    places.sort(key=lambda p: (KINDS.index(p[2]), p[1], p[0]))
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, ALL_MIGRATIONS)
        await sync_registry(conn, province)
        await add_user(conn, "bench", Role.OPERATOR, PASSWORD)
        for i, (camera, zone, kind, district) in enumerate(places[:alerts]):
            severity = Severity.CRITICAL if i < HOT else SEVERITIES[i % len(SEVERITIES)]
            async with conn.transaction():
                changed = await observe(
                    conn, _observation(camera, zone, kind, i), district, severity
                )
                if changed is None:
                    raise RuntimeError("a start event must open an alert")
                await record_change(conn, changed[0])
    finally:
        await conn.close()
    return places[:HOT]


async def _storm(url: str, hot: list[Place], rate: float, seconds: float) -> dict[str, float]:
    """Repeat the hot alerts at ``rate`` for ``seconds``; {"id:count": commit wall ms}."""
    conn = await asyncpg.connect(url)
    committed: dict[str, float] = {}
    try:
        start = time.monotonic()
        total = int(rate * seconds)
        for i in range(total):
            camera, zone, kind, district = hot[i % len(hot)]
            async with conn.transaction():
                changed = await observe(
                    conn, _observation(camera, zone, kind, 10**6 + i), district, Severity.CRITICAL
                )
                if changed is None:
                    raise RuntimeError("a repeat must update its alert")
                await record_change(conn, changed[0])
            committed[f"{changed[0].id}:{changed[0].count}"] = time.time() * 1000
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    finally:
        await conn.close()
    return committed


# --- the browser -------------------------------------------------------------------------


def _shown(seen: dict[str, float], key: str, never: float) -> float:
    """When the row first showed this change or a later one of the same alert (changes
    within one frame are drawn together, so an intermediate count may never be on screen);
    ``never`` if none showed: at the end of the run, its latency is at least that."""
    alert, count = key.rsplit(":", 1)
    times = []
    for shown, at in seen.items():
        other, other_count = shown.rsplit(":", 1)
        if other == alert and int(other_count) >= int(count):
            times.append(at)
    return min(times, default=never)


async def _metrics(cdp: CDPSession) -> dict[str, float]:
    """Chromium's counters: TaskDuration (s of main-thread work), JSHeapUsedSize, ..."""
    answer = await cdp.send("Performance.getMetrics")
    return {m["name"]: m["value"] for m in answer["metrics"]}


async def _measure(
    host: str,
    url: str,
    hot: list[Place],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        hot_ids = [
            str(
                await conn.fetchval(
                    "SELECT id FROM alerts WHERE source_id = $1 AND zone_id IS NOT DISTINCT FROM $2"
                    " AND kind = $3 AND state <> 'resolved'",
                    camera,
                    zone,
                    str(kind),
                )
            )
            for camera, zone, kind, _ in hot
        ]
    finally:
        await conn.close()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 1000})
            # Results leave the page as they happen: a page far behind would never answer
            # a question asked at the end.
            seen: dict[str, float] = {}
            tasks: list[tuple[float, float]] = []

            def note_seen(key: str, at: float) -> None:
                seen.setdefault(key, at)

            def note_long_task(at: float, ms: float) -> None:
                tasks.append((at, ms))

            await page.expose_function("__benchSeen", note_seen)
            await page.expose_function("__benchLongTask", note_long_task)
            await page.add_init_script(_OBSERVER % repr(hot_ids).replace("'", '"'))
            await page.goto(f"http://{host}/")
            await page.fill("#username", "bench")
            await page.fill("#password", PASSWORD)
            await page.click("#login-form button[type=submit]")
            await page.locator("#link[data-state=live]").wait_for(timeout=60_000)
            await page.locator(
                f'[data-alerts*="{hot_ids[0]}:"], tr[data-alert-id="{hot_ids[0]}"]'
            ).first.wait_for(timeout=60_000)
            await page.wait_for_timeout(2000)  # the first render and the map settle
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            before = await _metrics(cdp)
            since = await page.evaluate("performance.now()")
            wall = time.monotonic()
            committed = await _storm(url, hot, rate, seconds)
            await asyncio.sleep(SETTLE)  # the last changes reach the screen
            elapsed = time.monotonic() - wall
            end = time.time() * 1000
            try:
                after: dict[str, float] | None = await asyncio.wait_for(_metrics(cdp), 10)
            except TimeoutError:
                after = None  # the page is too far behind to answer
            long_tasks = [d for start, d in tasks if start >= since]
        finally:
            await browser.close()
    latencies = [max(0.0, _shown(seen, key, end) - at) for key, at in committed.items()]
    busy = None if after is None else after["TaskDuration"] - before["TaskDuration"]
    return {
        "changes": len(committed),
        "updates_seen": sum(_shown(seen, key, -1.0) >= 0 for key in committed),
        "update_p50_ms": _percentile(latencies, 0.5),
        "update_p99_ms": _percentile(latencies, 0.99),
        "long_task_max_ms": round(max(long_tasks, default=0.0), 1),
        "long_tasks": len(long_tasks),
        "main_thread_busy_pct": None if busy is None else round(100 * busy / elapsed, 1),
        "js_heap_mb": None if after is None else round(after["JSHeapUsedSize"] / 2**20, 1),
    }


def run(
    alerts: int = 1000, rate: float = 50.0, seconds: float = 30.0, baseline: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ioc-bench-page-") as root:
        cluster = PostgresCluster(Path(root) / "postgres", durable=False)
        _say("starting PostgreSQL")
        cluster.start()
        try:
            url = cluster.url_for("postgres")
            _say(f"seeding {alerts} open alerts")
            hot = asyncio.run(_seed(url, alerts))
            results: dict[str, Any] = {}
            for name, static in (("baseline", baseline), ("ours", None)):
                if name == "baseline" and static is None:
                    continue
                with _server(url, None if static is None else str(static)) as host:
                    _say(f"{name}: page on {host}; {rate:g} changes/s for {seconds:g} s")
                    results[name] = asyncio.run(_measure(host, url, hot, rate, seconds))
                    _say(f"{name}: {results[name]}")
        finally:
            cluster.stop()
    ours = results["ours"]
    return {
        "alerts": alerts,
        "changes_per_s": rate,
        **{
            k: ours[k]
            for k in (
                "update_p50_ms",
                "update_p99_ms",
                "long_task_max_ms",
                "main_thread_busy_pct",
                "js_heap_mb",
            )
        },
        "changes": ours["changes"],
        "updates_seen": ours["updates_seen"],
        **({"baseline": results["baseline"]} if "baseline" in results else {}),
    }
