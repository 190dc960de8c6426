"""Each service on its own, as production runs them (one process each, configured URLs)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import os

import typer
import uvicorn

from alerts import AlertsEngine
from console_api import Role, add_user, create_app
from ingest import IngestService
from store import connect
from vision import VisionWorker, parse_shard, shard_cameras

from .runtime import infrastructure
from .settings import Settings


def tune_gc_for_throughput() -> None:
    """Ingest allocates a tuple per row; with the default thresholds the collector runs
    every 700 allocations over a heap that never holds cycles worth finding (measured: a
    third of the decode-and-build time). Freeze what start-up made, collect less often."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


async def _forever() -> None:
    await asyncio.Event().wait()


def run_vision(settings: Settings, shard: str) -> None:
    part = parse_shard(shard)

    async def run() -> None:
        async with infrastructure(settings, prepare=False) as infra:
            cameras = shard_cameras(infra.province.cameras, part)
            async with VisionWorker(
                cameras,
                infra.endpoint,
                topics=infra.topics,
                timezone=infra.province.timezone,
                identifier=f"vision-{part[0]}-of-{part[1]}",
            ):
                await _forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def run_ingest(settings: Settings, identifier: str, group: str | None) -> None:
    tune_gc_for_throughput()

    async def run() -> None:
        async with (
            infrastructure(settings) as infra,
            IngestService(
                infra.endpoint,
                infra.store,
                topics=infra.topics,
                identifier=identifier,
                shared_group=group,
            ),
        ):
            await _forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def run_alerts(settings: Settings) -> None:
    async def run() -> None:
        async with (
            infrastructure(settings) as infra,
            AlertsEngine(infra.endpoint, infra.store, infra.province, topics=infra.topics),
        ):
            await _forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def run_api(settings: Settings) -> None:
    async def run() -> None:
        async with infrastructure(settings) as infra:
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(infra.store), host=settings.api_host, port=settings.api_port
                )
            )
            await server.serve()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def add_console_user(settings: Settings, username: str, role: str) -> None:
    try:
        parsed = Role(role)
    except ValueError as exc:
        raise typer.BadParameter(f"role must be one of {', '.join(Role)}") from exc
    password = os.environ.get("IOC_NEW_PASSWORD") or getpass.getpass(f"Password for {username}: ")
    if len(password) < 10:
        raise typer.BadParameter("the password must have at least 10 characters")

    async def run() -> None:
        async with infrastructure(settings) as infra:
            conn = await connect(infra.store)
            try:
                await add_user(conn, username, parsed, password)
            finally:
                await conn.close()

    asyncio.run(run())
    typer.echo(f"user {username} ({parsed}) saved")
