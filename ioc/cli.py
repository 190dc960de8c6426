"""The ``ioc`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from protocol import ConfigError, load_province

from .runtime import NotConfigured
from .settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
store_app = typer.Typer(no_args_is_help=True, help="Time-series store upkeep.")
app.add_typer(bench_app, name="bench")
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts service and police delivery.")
app.add_typer(alerts_app, name="alerts")
app.add_typer(store_app, name="store")


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


@store_app.command("maintain")
def store_maintain() -> None:
    """Partitions ahead and retention now (ingest also does it hourly); JSON summary."""
    from .store_commands import run_maintenance

    run_maintenance(_settings())


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
    fps: Annotated[
        float | None,
        typer.Option(min=0.01, help="Analyse every k-th frame, k = round(clip fps / FPS)"),
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
            target_fps=fps,
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
    """Run an ingest worker (telemetry, traffic, device states, dead letters into the store)."""
    from .services import run_ingest

    run_ingest(_settings(), identifier, group)


@alerts_app.command("run")
def alerts_run() -> None:
    """Run the alerts service (engine, MQTT publisher, police delivery); SIGHUP reloads rules."""
    from .alerts_commands import run_alerts

    run_alerts(_settings())


@alerts_app.command("send-test")
def alerts_send_test(
    to: Annotated[str, typer.Option(help="Police endpoint URL to POST to")],
    secret_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the whsec_<base64> secret"),
    ] = "IOC_SEND_TEST_SECRET",  # noqa: S107  # the name of a variable, not a secret
    secret_file: Annotated[
        Path | None,
        typer.Option(help="File holding the secret instead (never on the command line)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds")] = 60.0,
    max_failures: Annotated[int, typer.Option(help="Give up after this many failures")] = 5,
) -> None:
    """Send one sample incident (Alert, Update, Cancel; CAP status Test) through the outbox.
    The secret comes from the environment or a file: a command line is visible to every
    user of the machine (ps) and stays in shell histories."""
    from .alerts_commands import run_send_test

    if secret_file is not None:
        secret = secret_file.read_text(encoding="utf-8").strip()
    elif os.environ.get(secret_env):
        secret = os.environ[secret_env]
    else:
        sys.stderr.write(f"error: set {secret_env} (or give --secret-file) to the secret\n")
        raise typer.Exit(2)
    code = run_send_test(_settings(), to, secret, timeout=timeout, max_failures=max_failures)
    raise typer.Exit(code)


@alerts_app.command("check-rules")
def alerts_check_rules(
    path: Annotated[Path, typer.Argument(help="Rules file; default IOC_ALERT_RULES")] = Path(),
) -> None:
    """Check a rules file against the province and the environment; name every problem."""
    from .alerts_commands import check_rules

    raise typer.Exit(check_rules(_settings(), path if path != Path() else None))


@alerts_app.command("enable-endpoint")
def alerts_enable_endpoint(endpoint: str) -> None:
    """Re-enable a police endpoint that answered 410 Gone; its pending messages go out."""
    from .alerts_commands import enable

    enable(_settings(), endpoint)


@app.command()
def simulate(
    agent_id: Annotated[str, typer.Option(help="Edge agent id of the simulator")] = "sim-1",
    incidents: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Incident script (YAML)")
    ] = None,
) -> None:
    """Run the simulated province's cameras and access points (demo and benchmarks)."""
    from .services import run_simulator

    run_simulator(_settings(), agent_id, incidents)


@app.command()
def api() -> None:
    """Serve the console API."""
    from .services import run_api

    run_api(_settings())


@app.command()
def edge(
    config: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Agent YAML")],
) -> None:
    """Run one edge agent (cameras and Wi-Fi of its group) until SIGTERM/SIGINT."""
    from .edge_commands import run_edge

    run_edge(config)


@app.command("mosquitto-config")
def mosquitto_config(
    out: Annotated[Path, typer.Option(help="Folder for passwd, acl and credentials")],
    province: Annotated[Path | None, typer.Option(help="Default: IOC_PROVINCE")] = None,
    service: Annotated[list[str] | None, typer.Option(help="Centre service users")] = None,
) -> None:
    """Write a Mosquitto password file and ACL: each agent publishes only its own topics."""
    from .edge_commands import mosquitto_config as write

    settings = Settings()
    write(province or settings.province, out, settings.topic_prefix, service)


@bench_app.command("edge")
def bench_edge(
    duration: Annotated[float, typer.Option(help="Seconds of our simulator")] = 20.0,
    baseline: Annotated[float, typer.Option(help="Seconds of the baseline")] = 10.0,
    readers: Annotated[float, typer.Option(help="Seconds per camera-reader run")] = 4.0,
) -> None:
    """Simulator CPU (200 cameras x 5 fps + 500 APs) and camera readers, against baselines."""
    from .bench.edge import main as run

    run(duration, baseline, readers)


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="operator | police | planner | admin")],
) -> None:
    """Add or update a user; the password is read from IOC_NEW_PASSWORD or a prompt."""
    from .services import add_console_user

    add_console_user(_settings(), username, role)


@bench_app.command("alerts")
def bench_alerts(
    events: Annotated[int, typer.Option(help="Events to publish")] = 600,
    rate: Annotated[float, typer.Option(help="Events per second offered")] = 60.0,
    police_latency: Annotated[float, typer.Option(help="Seconds the police take per request")] = (
        0.1
    ),
    drain: Annotated[float, typer.Option(help="Longest wait for a run to finish, seconds")] = 120.0,
) -> None:
    """Events to the console and police: the outbox path vs police POSTed inline."""
    from .bench.alerts import main as run

    run(events, rate, police_latency, drain)


@bench_app.command("ingest")
def bench_ingest(
    rate: Annotated[float, typer.Option(help="Samples/s the fleet publishes")] = 120_000,
    seconds: Annotated[float, typer.Option(help="How long the fleet publishes")] = 30,
    batch: Annotated[int, typer.Option(help="Samples per MQTT message")] = 500,
    aps: Annotated[int, typer.Option(help="Access points in the fleet")] = 324,
    baseline_seconds: Annotated[float, typer.Option(help="Row-by-row baseline run")] = 10,
) -> None:
    """Telemetry through Mosquitto into PostgreSQL: batched ingest vs row-by-row INSERT."""
    from .bench._publisher import Fleet
    from .bench.ingest import main as run

    run(Fleet(rate, seconds, batch, aps), baseline_seconds)


@bench_app.command("history")
def bench_history(
    cameras: Annotated[int, typer.Option(help="Cameras (two counting lines each)")] = 200,
    days: Annotated[int, typer.Option(help="Days of minute-level traffic")] = 30,
    repeat: Annotated[int, typer.Option(help="Runs per rollup query (best is kept)")] = 9,
) -> None:
    """Planner queries from the rollups vs the raw table, on 30 days of traffic."""
    from .bench.history import main as run

    run(cameras, days, repeat)


@bench_app.command("vision")
def bench_vision(
    cameras: Annotated[int, typer.Option(min=1, help="Cameras replaying the clips")] = 200,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds of video per camera")] = 15,
) -> None:
    """Batched vision pipeline vs a per-camera MOG2 loop on the same JPEG frames."""
    from .bench.vision import run

    typer.echo(json.dumps(run(cameras, seconds)))


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


@bench_app.command("e2e")
def bench_e2e(  # noqa: PLR0917  # typer maps each option to a parameter
    cameras: Annotated[int, typer.Option(min=1, max=2000, help="Cameras (the clips)")] = 200,
    fps: Annotated[float, typer.Option(min=0.2, max=30, help="Frames per second each")] = 5.0,
    aps: Annotated[int, typer.Option(min=1, max=20_000, help="Wi-Fi access points")] = 500,
    seconds: Annotated[float, typer.Option(min=5, help="Measured seconds")] = 60.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds before measuring")] = 30.0,
    shards: Annotated[int, typer.Option(min=1, max=16, help="Vision processes")] = 2,
    operators: Annotated[int, typer.Option(min=1, max=100, help="Websocket clients")] = 3,
) -> None:
    """The whole province as processes: frame published -> alert on the operators' websockets."""
    from .bench._files import Size
    from .bench.e2e import main as run

    _settings()
    run(Size(cameras, fps, aps, shards, operators), seconds, warmup, drain_deadline=120.0)


@app.command()
def soak(  # noqa: PLR0917  # typer maps each option to a parameter
    minutes: Annotated[float, typer.Option(min=0.5, help="Minutes of load and faults")] = 10.0,
    cameras: Annotated[int, typer.Option(min=1, max=2000, help="Cameras (the clips)")] = 200,
    fps: Annotated[float, typer.Option(min=0.2, max=30, help="Frames per second each")] = 5.0,
    aps: Annotated[int, typer.Option(min=1, max=20_000, help="Wi-Fi access points")] = 500,
    shards: Annotated[int, typer.Option(min=1, max=16, help="Vision processes")] = 2,
    drain: Annotated[float, typer.Option(min=1, help="Longest wait for the end state, s")] = 180,
    keep: Annotated[
        Path | None, typer.Option(help="Run in this folder and keep it (logs, database)")
    ] = None,
) -> None:
    """The province under load while broker, database and each worker restart in turn;
    exits 1 on any telemetry, event, police or websocket loss or duplicate."""
    from .bench._files import Size
    from .soak import main as run

    _settings()
    raise typer.Exit(run(Size(cameras, fps, aps, shards, operators=2), minutes, drain, keep))


def main() -> None:
    try:
        app()
    except (ConfigError, NotConfigured) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
