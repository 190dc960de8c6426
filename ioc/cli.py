"""The ``ioc`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from protocol import ConfigError, load_province

from .settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Province operations centre: services, tools and benchmarks.",
)
vision_app = typer.Typer(no_args_is_help=True, help="Video analytics.")
users_app = typer.Typer(no_args_is_help=True, help="Console users.")
bench_app = typer.Typer(
    no_args_is_help=True,
    help="Benchmarks. Each starts what it needs; the last line of output is one JSON object.",
)
app.add_typer(vision_app, name="vision")
app.add_typer(users_app, name="users")
app.add_typer(bench_app, name="bench")


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
    vision_workers: Annotated[int, typer.Option(min=1, max=16, help="Vision processes")] = 2,
) -> None:
    """Run the simulated province end to end (embedded broker and database by default)."""
    from .demo import main as run

    run(Settings(), duration, vision_workers)


@app.command()
def migrate() -> None:
    """Apply the store's migrations and load the registry from the province file."""
    from .runtime import infrastructure

    settings = _settings()

    async def run() -> None:
        async with infrastructure(settings):
            pass

    asyncio.run(run())


@vision_app.command("replay")
def vision_replay(
    video: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Video file")],
    config: Annotated[Path, typer.Option(help="Camera/zone YAML")],
    camera: Annotated[str, typer.Option(help="Camera id in the config")],
    start_time: Annotated[
        float | None,
        typer.Option(
            help="Wall-clock time of the first frame (epoch s), for zone schedules; default now"
        ),
    ] = None,
) -> None:
    """Run the live detectors over a file; print one JSON line per event, then a summary."""
    from vision import ReplayError, replay

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        province = load_province(config)
        cam = province.camera(camera)
        for record in replay(
            video,
            cam,
            timezone=province.timezone,
            origin=start_time if start_time is not None else time.time(),
        ):
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    except (ConfigError, ReplayError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@vision_app.command("run")
def vision_run(
    shard: Annotated[str, typer.Option(help="Take cameras i of n, e.g. 2/4")] = "1/1",
) -> None:
    """Run a vision worker for a shard of the province's cameras."""
    from .services import run_vision

    run_vision(_settings(), shard)


@app.command()
def ingest(
    identifier: Annotated[str, typer.Option(help="MQTT client id (unique per process)")] = (
        "ingest-1"
    ),
    group: Annotated[
        str | None,
        typer.Option(
            help="Shared-subscription group to split the load with other ingest processes"
        ),
    ] = None,
) -> None:
    """Run an ingest worker (telemetry and dead letters into the store)."""
    from .services import run_ingest

    run_ingest(_settings(), identifier, group)


@app.command()
def alerts() -> None:
    """Run the alerts engine."""
    from .services import run_alerts

    run_alerts(_settings())


@app.command()
def simulate(
    agent_id: Annotated[str, typer.Option(help="Edge agent id of the simulator")] = "sim-1",
) -> None:
    """Run the simulated province's cameras and access points (demo and benchmarks)."""
    from .services import run_simulator

    run_simulator(_settings(), agent_id)


@app.command()
def api() -> None:
    """Serve the console API."""
    from .services import run_api

    run_api(_settings())


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="operator | police | planner | admin")],
) -> None:
    """Add or update a user; the password is read from IOC_NEW_PASSWORD or a prompt."""
    from .services import add_console_user

    add_console_user(_settings(), username, role)


@users_app.command("revoke")
def users_revoke(username: str) -> None:
    """End every session of a user (a lost device, a leaked token)."""
    from .services import revoke_console_sessions

    revoke_console_sessions(_settings(), username)


@bench_app.command("ws")
def bench_ws(
    clients: Annotated[int, typer.Option(min=1, max=5000, help="Websocket clients")] = 500,
    changes: Annotated[int, typer.Option(min=1, max=100_000, help="Alert changes")] = 200,
    rate: Annotated[float, typer.Option(min=0.1, max=1000, help="Changes per second")] = 20.0,
    rounds: Annotated[int, typer.Option(min=1, max=20, help="Alternations ours/baseline")] = 2,
) -> None:
    """Alert change committed -> received by every websocket client: ours vs the spine's."""
    from .bench.ws import run

    _settings()
    typer.echo(json.dumps(run(clients, changes, rate, rounds)))


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
