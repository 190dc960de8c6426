"""Each service on its own, as production runs them: one process each, configured URLs,
graceful stop on SIGTERM/SIGINT, counters reported on `services/{instance}/status`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import typer
import uvicorn

from console_api import ConsoleConfig, Role, ThrottleLimits, add_user, create_app, revoke_tokens
from edge import CitySimulator, ClipLibrary, incident_targets, load_incidents
from ingest import IngestService
from protocol import Topics, load_province
from store import connect
from vision import ShardLease, VisionStats, VisionWorker, parse_shard, shard_cameras

from .alerts_commands import run_alerts
from .evidence_commands import evidence_centre, simulator_uploader
from .runtime import (
    BrokerSide,
    NotConfigured,
    broker_endpoint,
    broker_side,
    database_url,
    infrastructure,
    prepare_store,
    retention,
    store_config,
    time_window,
)
from .settings import PROJECT_ROOT, Settings
from .status import StatusReporter, counters_of


def serve(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` until it returns or a SIGTERM/SIGINT asks it to stop (it is cancelled
    and unwinds its context managers: batches drain, connections close)."""

    async def runner() -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("no running task")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main()

    asyncio.run(runner())


async def _report_until_stopped(
    infra: BrokerSide,
    instance: str,
    service: str,
    stats: object,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Report until cancelled; with ``ready``, only once it returned: a consumer reports
    "running" when its subscriptions exist, so whoever waits for that (the benchmarks, the
    soak) knows that nothing published from then on can miss it."""
    if ready is not None:
        await ready()
    async with StatusReporter(
        infra.endpoint, infra.topics, instance, service, lambda: counters_of(stats)
    ):
        await asyncio.Event().wait()


__all__ = [
    "add_console_user",
    "run_alerts",
    "run_api",
    "run_ingest",
    "run_simulator",
    "run_vision",
    "serve",
]


def tune_gc_for_throughput() -> None:
    """Ingest allocates a tuple per row; with the default thresholds the collector runs
    every 700 allocations over a heap that never holds cycles worth finding (measured: a
    third of the decode-and-build time). Freeze what start-up made, collect less often."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run_vision(
    settings: Settings, shard: str, *, lease: bool = False, instance: str | None = None
) -> None:
    """A vision worker needs the broker and the province file; with ``lease`` also the
    database, whose advisory lock makes it the shard's worker or a standby."""
    part = parse_shard(shard)
    instance = instance or f"vision-{part[0]}-of-{part[1]}"
    infra = broker_side(settings)

    def worker() -> VisionWorker:
        return VisionWorker(
            shard_cameras(infra.province.cameras, part),
            infra.endpoint,
            topics=infra.topics,
            timezone=infra.province.timezone,
            identifier=instance,
            time_window=time_window(settings),
            max_frame_bytes=settings.vision_max_frame_bytes,
        )

    async def analyse() -> None:
        async with worker() as running:
            await _report_until_stopped(
                infra, instance, "vision", running.stats, running.wait_until_subscribed
            )

    if not lease:
        serve(analyse)
        return
    url = database_url(settings)

    async def main() -> None:
        shown = _Shown(VisionStats())
        async with ShardLease(
            url,
            part,
            instance=instance,
            timeout=settings.vision_lease_timeout,
            retry=settings.vision_lease_retry,
        ) as held:
            # One attempt before the first report: "standby" then means the shard is
            # another's (or about to be ours: "running" follows once subscribed).
            await held.attempt()
            async with StatusReporter(
                infra.endpoint,
                infra.topics,
                instance,
                "vision",
                lambda: counters_of(shown.stats),
                state="standby",
            ) as reporter:
                await held.run_while_held(lambda: _analyse_while_held(worker, shown, reporter))

    serve(main)


@dataclass
class _Shown:
    """The counters a vision instance reports: its current worker's (a new one per hold)."""

    stats: VisionStats


async def _analyse_while_held(
    worker: Callable[[], VisionWorker], shown: _Shown, reporter: StatusReporter
) -> None:
    """Analyse the shard until cancelled (the lease lost, or the process stopping)."""
    async with worker() as running:
        shown.stats = running.stats
        await running.wait_until_subscribed()
        reporter.set_state("running")
        try:
            await asyncio.Event().wait()
        finally:
            reporter.set_state("standby")


def run_ingest(settings: Settings, identifier: str, group: str | None) -> None:
    tune_gc_for_throughput()

    async def main() -> None:
        async with (
            infrastructure(settings) as infra,
            IngestService(
                infra.endpoint,
                infra.store,
                topics=infra.topics,
                identifier=identifier,
                shared_group=group,
                time_window=time_window(settings),
                retention=retention(settings),
            ) as ingest,
        ):
            await _report_until_stopped(
                infra, identifier, "ingest", ingest.stats, ingest.wait_until_subscribed
            )

    serve(main)


def run_simulator(settings: Settings, agent_id: str, incidents: Path | None = None) -> None:
    """The simulated province needs the broker and the province file, never the database."""
    infra = broker_side(settings)
    script = load_incidents(incidents, incident_targets(infra.province)) if incidents else []

    async def main() -> None:
        async with CitySimulator(
            infra.province,
            infra.endpoint,
            ClipLibrary(base=PROJECT_ROOT),
            topics=infra.topics,
            agent_id=agent_id,
            incidents=script,
            uploader=simulator_uploader(settings, agent_id),
        ) as simulator:
            await _report_until_stopped(infra, agent_id, "simulator", simulator.stats)

    serve(main)


def console_config(settings: Settings) -> ConsoleConfig:
    """The console API's limits from ``IOC_*`` (docs/production.md, "Limits")."""
    return ConsoleConfig(
        map_tiles=settings.map_tiles,
        internals=settings.api_internals,
        login_limits=ThrottleLimits(
            per_address=settings.login_failures_per_address,
            per_user=settings.login_failures_per_user,
            window=settings.login_window,
        ),
        password_workers=settings.password_workers,
        ws_send_timeout=settings.ws_send_timeout,
    )


def run_api(settings: Settings) -> None:
    """The console API needs only the database: live changes come from the change log
    through LISTEN/NOTIFY. With IOC_MQTT_URL it also asks edges for camera snapshots."""
    if settings.database_url is None:
        raise NotConfigured("IOC_DATABASE_URL is not set")
    store = store_config(settings, settings.database_url.get_secret_value())
    read_url = settings.database_read_url
    read_store = None if read_url is None else store_config(settings, read_url.get_secret_value())
    province = load_province(settings.province)
    # Optional: only camera snapshots need the broker (credentials and CA as for the others).
    mqtt = None if settings.mqtt_url is None else broker_endpoint(settings)

    topics = Topics(settings.topic_prefix)

    async def main() -> None:
        await prepare_store(store, province)
        app = create_app(
            store,
            config=console_config(settings),
            mqtt=mqtt,
            topics=topics,
            evidence=evidence_centre(settings, province),
            read_store=read_store,
        )
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            # IOC_LOG_LEVEL: at INFO the access log is on (it never holds a token).
            log_level=settings.log_level.lower(),
            # A change is encoded once for every client; compressing it per client would
            # cost more than sending it on a LAN.
            ws_per_message_deflate=False,
            ws_max_size=64 * 1024,  # clients send only small control messages
            # Behind HAProxy the peer is the proxy: the client is in X-Forwarded-For, trusted
            # from these addresses only (login limits count per client, not per proxy).
            proxy_headers=True,
            forwarded_allow_ips=settings.api_forwarded_allow_ips,
        )
        # uvicorn handles SIGTERM/SIGINT itself and returns from serve().
        server = uvicorn.Server(config)
        if mqtt is None:
            await server.serve()
            return
        # With a broker, the API reports its status like every service (the demo's board).
        instance = f"api-{socket.gethostname()}-{settings.api_port}"
        async with StatusReporter(mqtt, topics, instance, "api", app.state.metrics.totals):
            await server.serve()

    asyncio.run(main())


def add_console_user(settings: Settings, username: str, role: str) -> None:
    try:
        parsed = Role(role)
    except ValueError as exc:
        raise typer.BadParameter(f"role must be one of {', '.join(Role)}") from exc
    password = os.environ.get("IOC_NEW_PASSWORD") or getpass.getpass(f"Password for {username}: ")
    if len(password) < 10:
        raise typer.BadParameter("the password must have at least 10 characters")

    store = store_config(settings, database_url(settings))

    async def run() -> None:
        await prepare_store(store, load_province(settings.province))
        conn = await connect(store)
        try:
            await add_user(conn, username, parsed, password)
        finally:
            await conn.close()

    asyncio.run(run())
    typer.echo(f"user {username} ({parsed}) saved")


def revoke_console_sessions(settings: Settings, username: str) -> None:
    store = store_config(settings, database_url(settings))

    async def run() -> int:
        conn = await connect(store)
        try:
            return await revoke_tokens(conn, username)
        finally:
            await conn.close()

    typer.echo(f"{asyncio.run(run())} session(s) of {username} ended")
