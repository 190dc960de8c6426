"""``ioc demo``: the whole province on one machine, with live status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvicorn
from rich.console import Console
from rich.live import Live
from rich.table import Table

from alerts import AlertsEngine
from console_api import Role, add_user, create_app
from edge import CitySimulator, ClipLibrary
from ingest import IngestService
from store import StoreConfig, connect
from vision import VisionWorker

from .runtime import infrastructure
from .settings import PROJECT_ROOT, Settings

logger = logging.getLogger(__name__)


@dataclass
class _Services:
    simulator: CitySimulator
    ingest: IngestService
    engine: AlertsEngine
    vision: VisionWorker


class StatusBoard:
    """Rates since the previous look, and the totals that matter to someone watching."""

    COLUMNS = (
        "frames/s analysed",
        "telemetry rows/s",
        "open alerts",
        "dropped frames",
        "events",
        "dead letters",
    )

    def __init__(self, services: _Services, conn: asyncpg.Connection) -> None:
        self.services = services
        self.conn = conn
        self.started = self.at = time.monotonic()
        self.frames = self.rows = 0

    async def table(self) -> Table:
        s = self.services
        now = time.monotonic()
        span = max(now - self.at, 1e-6)
        frames, rows = s.vision.stats.frames_processed, s.ingest.stats.samples_written
        open_alerts = await self.conn.fetchval(
            "SELECT count(*) FROM alerts WHERE state <> 'resolved'"
        )
        table = Table(title=f"Province demo, {now - self.started:,.0f} s")
        for column in self.COLUMNS:
            table.add_column(column, justify="right")
        table.add_row(
            f"{(frames - self.frames) / span:,.0f}",
            f"{(rows - self.rows) / span:,.0f}",
            f"{open_alerts}",
            f"{s.vision.stats.frames_dropped:,}",
            f"{s.vision.stats.events_published:,}",
            f"{s.ingest.stats.dead_letters + s.engine.stats.dead_letters:,}",
        )
        self.at, self.frames, self.rows = now, frames, rows
        return table

    def summary(self) -> str:
        s = self.services
        return (
            f"Published {s.simulator.stats.frames_published:,} frames and "
            f"{s.simulator.stats.samples_published:,} Wi-Fi samples; analysed "
            f"{s.vision.stats.frames_processed:,} frames; stored "
            f"{s.ingest.stats.samples_written:,} samples; {s.engine.stats.changes:,} alert "
            "changes."
        )


async def _demo_operator(store: StoreConfig, state_dir: Path) -> Path:
    """Create the demo's operator with a fresh password, kept in a file only we can read."""
    password = secrets.token_urlsafe(12)
    conn = await connect(store)
    try:
        await add_user(conn, "operator", Role.OPERATOR, password)
    finally:
        await conn.close()
    credentials = state_dir / "demo-credentials"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.touch(mode=0o600)
    credentials.write_text(f"operator {password}\n")
    return credentials


async def run_demo(settings: Settings, duration: float | None, console: Console) -> None:
    async with contextlib.AsyncExitStack() as stack:
        console.print(
            "[bold]Starting the province[/] (embedded broker and database unless "
            "IOC_MQTT_URL / IOC_DATABASE_URL are set) ..."
        )
        infra = await stack.enter_async_context(infrastructure(settings, embedded=True))
        credentials = await _demo_operator(infra.store, settings.state_dir)
        console.print(f"Encoding clips for {len(infra.province.cameras)} cameras ...")
        simulator = CitySimulator(
            infra.province, infra.endpoint, ClipLibrary(base=PROJECT_ROOT), topics=infra.topics
        )
        services = _Services(
            simulator=simulator,
            ingest=await stack.enter_async_context(
                IngestService(infra.endpoint, infra.store, topics=infra.topics)
            ),
            engine=await stack.enter_async_context(
                AlertsEngine(infra.endpoint, infra.store, infra.province, topics=infra.topics)
            ),
            vision=await stack.enter_async_context(
                VisionWorker(
                    infra.province.cameras,
                    infra.endpoint,
                    topics=infra.topics,
                    timezone=infra.province.timezone,
                )
            ),
        )
        await stack.enter_async_context(simulator)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(infra.store),
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
            )
        )
        group = await stack.enter_async_context(asyncio.TaskGroup())
        api = group.create_task(server.serve(), name="console-api")
        stack.callback(setattr, server, "should_exit", True)
        console.print(
            f"Console API on http://{settings.api_host}:{settings.api_port} (user 'operator', "
            f"password in {credentials}); {len(infra.province.cameras)} cameras, "
            f"{len(infra.province.access_points)} APs." + ("" if duration else " Ctrl-C stops.")
        )
        status_conn = await connect(infra.store)
        stack.push_async_callback(status_conn.close)
        board = StatusBoard(services, status_conn)
        await _show_status(board, api, duration, console)
        console.print("Stopping. " + board.summary())
    console.print("Stopped cleanly.", style="green")


async def _show_status(
    board: StatusBoard, api: asyncio.Task[None], duration: float | None, console: Console
) -> None:
    """Refresh the board (every second on a terminal, every 5 s in a log) until time is up
    or the API stops (a signal reached uvicorn)."""
    deadline = None if duration is None else board.started + duration
    period = 1.0 if console.is_terminal else 5.0
    with Live(console=console, auto_refresh=False) as live:
        while (deadline is None or time.monotonic() < deadline) and not api.done():
            left = period if deadline is None else min(period, deadline - time.monotonic())
            await asyncio.sleep(max(left, 0.0))
            table = await board.table()
            if console.is_terminal:
                live.update(table, refresh=True)
            else:
                console.print(table)


def main(settings: Settings, duration: float | None) -> None:
    console = Console(stderr=True)
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(settings, duration, console))
