"""``ioc demo``: the whole province on one machine, every service in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from console_api import Role, add_user
from store import Connection, StoreConfig, connect

from .board import StatusBoard
from .runtime import Infrastructure, infrastructure
from .settings import Settings
from .supervisor import Supervisor

logger = logging.getLogger(__name__)


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


def child_environment(settings: Settings, infra: Infrastructure) -> dict[str, str]:
    """What a service process needs to find the broker and the store of this run."""
    endpoint = infra.endpoint
    return {
        "IOC_MQTT_URL": f"mqtt://{endpoint.host}:{endpoint.port}",
        "IOC_MQTT_V5": "true" if endpoint.mqtt5 else "false",
        "IOC_DATABASE_URL": infra.store.url,
        "IOC_PROVINCE": str(settings.province.resolve()),
        "IOC_TOPIC_PREFIX": infra.topics.prefix,
        "IOC_STATE_DIR": str(settings.state_dir.resolve()),
        "IOC_API_HOST": settings.api_host,
        "IOC_API_PORT": str(settings.api_port),
        "IOC_LOG_LEVEL": settings.log_level,
    }


async def start_province(supervisor: Supervisor, vision_workers: int) -> None:
    await supervisor.add("ingest", "ingest", "--identifier", "ingest-1")
    await supervisor.add("alerts", "alerts", "run")
    for i in range(1, vision_workers + 1):
        await supervisor.add(f"vision-{i}", "vision", "run", "--shard", f"{i}/{vision_workers}")
    await supervisor.add("api", "api")
    await supervisor.add("simulator", "simulate")


def restarts(supervisor: Supervisor) -> str:
    """Which services the supervisor had to start again, and how often ("none" when none):
    a service in a crash loop shows here even though the supervisor keeps it running."""
    again = {n: s.starts - 1 for n, s in supervisor.services.items() if s.starts > 1}
    return ", ".join(f"{n} {k}" for n, k in sorted(again.items())) or "none"


def _summary(board: StatusBoard, open_alerts: int, restarted: str = "none") -> Table:
    table = Table(show_header=True)
    for column in (
        "frames/s analysed",
        "telemetry rows/s",
        "open alerts",
        "dropped frames",
        "dead letters",
        "restarts",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        f"{board.rate('vision', 'frames_processed'):,.0f}",
        f"{board.rate('ingest', 'samples_written'):,.0f}",
        f"{open_alerts:,}",
        f"{board.total('vision', 'frames_dropped'):,.0f}",
        f"{board.total('ingest', 'dead_letters') + board.total('alerts', 'dead_letters'):,.0f}",
        restarted,
    )
    return table


async def run_demo(
    settings: Settings, duration: float | None, console: Console, vision_workers: int
) -> None:
    started = time.monotonic()
    # Ctrl-C (SIGINT) and SIGTERM end the watch; the services then stop in order and the
    # totals are printed, as at the end of --duration.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        console.print(
            "[bold]Starting the province[/] (embedded broker and database unless "
            "IOC_MQTT_URL / IOC_DATABASE_URL are set) ..."
        )
        infra = await stack.enter_async_context(infrastructure(settings, embedded=True))
        credentials = await _demo_operator(infra.store, settings.state_dir)
        board = await stack.enter_async_context(StatusBoard(infra.endpoint, infra.topics))
        supervisor = await stack.enter_async_context(
            Supervisor(child_environment(settings, infra), settings.state_dir / "logs")
        )
        await start_province(supervisor, vision_workers)
        console.print(
            f"Console on http://{settings.api_host}:{settings.api_port} (user 'operator', "
            f"password in {credentials}); {len(infra.province.cameras)} cameras, "
            f"{len(infra.province.access_points)} access points; service logs in "
            f"{supervisor.log_dir}." + ("" if duration else " Ctrl-C stops.")
        )
        conn = await connect(infra.store)
        stack.push_async_callback(conn.close)
        await _watch(
            board, supervisor, conn, console, started=started, duration=duration, stop=stop
        )
        console.print(
            f"Stopping the services. Totals: {board.total('simulator', 'frames_published'):,.0f} "
            f"frames published, {board.total('vision', 'frames_processed'):,.0f} analysed, "
            f"{board.total('vision', 'events_published'):,.0f} events, "
            f"{board.total('ingest', 'samples_written'):,.0f} telemetry samples stored, "
            f"{board.total('alerts', 'changes'):,.0f} alert changes.",
            soft_wrap=True,
        )
    console.print("Stopped cleanly.", style="green")


async def _watch(
    board: StatusBoard,
    supervisor: Supervisor,
    conn: Connection,
    console: Console,
    *,
    started: float,
    duration: float | None,
    stop: asyncio.Event,
) -> None:
    """Refresh the board (every second on a terminal, every 5 s in a log) and restart
    services that died, until time is up or a signal asks to stop."""
    deadline = None if duration is None else started + duration
    period = 1.0 if console.is_terminal else 5.0
    with Live(console=console, auto_refresh=False) as live:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            left = period if deadline is None else min(period, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(left, 0.0))
            if stop.is_set():
                break
            for service in supervisor.dead():
                console.print(f"[red]{service.name} exited; restarting (see {service.log})")
                await service.start()
            open_alerts = await conn.fetchval(
                "SELECT count(*) FROM alerts WHERE state <> 'resolved'"
            )
            view = Group(
                board.table(f"Province demo, {time.monotonic() - started:,.0f} s"),
                _summary(board, open_alerts, restarts(supervisor)),
            )
            if console.is_terminal:
                live.update(view, refresh=True)
            else:
                console.print(view)


def main(settings: Settings, duration: float | None, vision_workers: int) -> None:
    console = Console(stderr=True)
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run_demo(settings, duration, console, vision_workers))
