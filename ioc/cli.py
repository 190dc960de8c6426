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
forecast_app = typer.Typer(no_args_is_help=True, help="Forecasts with intervals; anomaly alerts.")
app.add_typer(forecast_app, name="forecast")
evidence_app = typer.Typer(no_args_is_help=True, help="Evidence clips and their custody.")
app.add_typer(evidence_app, name="evidence")
open311_app = typer.Typer(no_args_is_help=True, help="Citizen reports (Open311 GeoReport v2).")
open311_keys = typer.Typer(no_args_is_help=True, help="Client applications' API keys.")
open311_app.add_typer(open311_keys, name="key")
app.add_typer(open311_app, name="open311")


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
    incidents: Annotated[
        Path | None, typer.Option(help="Scripted incidents (default config/incidents-demo.yaml)")
    ] = None,
) -> None:
    """Run the simulated province end to end (embedded broker and database by default)."""
    from .demo import main as run

    raise typer.Exit(run(Settings(), duration, vision_workers, incidents))


@app.command("police-receiver")
def police_receiver(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1")],
    key_variable: Annotated[
        str,
        typer.Option("--secret-env", help="Environment variable holding the whsec_ secret"),
    ] = "IOC_POLICE_SECRET_DEMO",
) -> None:
    """A local police dispatch receiver: verifies signatures, logs the CAP it receives."""
    from .police_receiver import serve

    _settings()
    secret = os.environ.get(key_variable)
    if not secret:
        raise typer.BadParameter(f"{key_variable} is not set", param_hint="--secret-env")
    asyncio.run(serve(secret, "127.0.0.1", port))


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
    lease: Annotated[
        bool,
        typer.Option(
            help="Analyse only while holding the shard's lease (a PostgreSQL advisory lock); "
            "otherwise wait as its standby"
        ),
    ] = False,
    instance: Annotated[
        str | None,
        typer.Option(help="Name of this worker (MQTT client, status); default vision-i-of-n"),
    ] = None,
) -> None:
    """Run a vision worker for a shard of the province's cameras."""
    from .services import run_vision

    run_vision(_settings(), shard, lease=lease, instance=instance)


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


@evidence_app.command("verify")
def evidence_verify() -> None:
    """Re-check every clip's SHA-256 and every custody chain; exit 1 on any break."""
    from .evidence_commands import run_verify

    raise typer.Exit(run_verify(_settings()))


@evidence_app.command("agent-token")
def evidence_agent_token(agent_id: str) -> None:
    """Print AGENT:TOKEN, the agent's upload credential (IOC_EVIDENCE_TOKEN on the edge)."""
    from .evidence_commands import print_agent_token

    _settings()
    print_agent_token(agent_id)


@evidence_app.command("retention")
def evidence_retention() -> None:
    """Delete clips past their kind's retention (held incidents excepted); JSON summary."""
    from .evidence_commands import run_retention

    run_retention(_settings())


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
    message_size_limit: Annotated[
        int | None,
        typer.Option(min=1024, help="Largest MQTT message the broker takes, bytes [8 MiB]"),
    ] = None,
) -> None:
    """Write a Mosquitto password file and ACL: each agent publishes only its own topics."""
    from .edge_commands import mosquitto_config as write

    settings = Settings()
    write(province or settings.province, out, settings.topic_prefix, service, message_size_limit)


@bench_app.command("edge")
def bench_edge(
    duration: Annotated[float, typer.Option(help="Seconds of our simulator")] = 20.0,
    baseline: Annotated[float, typer.Option(help="Seconds of the baseline")] = 10.0,
    readers: Annotated[float, typer.Option(help="Seconds per camera-reader run")] = 4.0,
) -> None:
    """Simulator CPU (200 cameras x 5 fps + 500 APs) and camera readers, against baselines."""
    from .bench.edge import main as run

    run(duration, baseline, readers)


@bench_app.command("evidence")
def bench_evidence(
    cameras: Annotated[int, typer.Option(min=1, help="Ring buffers measured")] = 10,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds fed to each ring")] = 35.0,
    rate: Annotated[float, typer.Option(help="Alerts (clip orders) per minute")] = 60.0,
    alerts: Annotated[int, typer.Option(min=0, help="Alerts in the pipeline run; 0: none")] = 60,
    drain: Annotated[float, typer.Option(help="Longest wait for the last clips, seconds")] = 120,
) -> None:
    """Evidence ring buffers' CPU and memory; alert-to-clip latency and lost clips across
    a broker restart and an API restart, with 200 simulated cameras."""
    from .bench.evidence import main as run

    run(cameras, seconds, rate, alerts, drain)


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


@bench_app.command("broker")
def bench_broker(  # noqa: PLR0917  # typer maps each option to a parameter
    edges: Annotated[int, typer.Option(min=1, help="Edge agents")] = 10,
    aps: Annotated[int, typer.Option(min=1, help="Access points per edge")] = 50,
    poll: Annotated[float, typer.Option(min=0.01, help="Seconds between samples per AP")] = 0.1,
    seconds: Annotated[float, typer.Option(min=2, help="How long the edges collect")] = 8.0,
    kill_at: Annotated[float, typer.Option(min=0.5, help="When the first broker dies, s")] = 4.0,
    resend_after: Annotated[float, typer.Option(min=0.5, help="spool.resend_after, s")] = 5.0,
) -> None:
    """Two Mosquittos, the first killed mid-run: telemetry lost without receipts, and with."""
    from .bench.broker import BrokerLoad
    from .bench.broker import main as run

    run(
        BrokerLoad(
            edges=edges,
            aps_per_edge=aps,
            poll_period=poll,
            seconds=seconds,
            kill_at=min(kill_at, seconds - 0.5),
            resend_after=resend_after,
        )
    )


@bench_app.command("standby")
def bench_standby(
    timeout: Annotated[float, typer.Option(min=1, help="IOC_VISION_LEASE_TIMEOUT, s")] = 10.0,
    retry: Annotated[float, typer.Option(min=0.05, help="IOC_VISION_LEASE_RETRY, s")] = 1.0,
) -> None:
    """Two vision workers on one shard: the standby's takeover when the holder is killed, and
    when it hangs."""
    from .bench.standby import main as run

    run(timeout, retry)


@bench_app.command("failover-db")
def bench_failover_db(  # noqa: PLR0917  # typer maps each option to a parameter
    rate: Annotated[float, typer.Option(help="Samples/s the fleet publishes")] = 120_000,
    seconds: Annotated[float, typer.Option(help="Throughput run, per mode")] = 20,
    fault_rate: Annotated[float, typer.Option(help="Samples/s while the primary dies")] = 20_000,
    fault_seconds: Annotated[float, typer.Option(help="Publishing while it dies")] = 30,
    batch: Annotated[int, typer.Option(help="Samples per MQTT message")] = 500,
    aps: Annotated[int, typer.Option(help="Access points in the fleet")] = 324,
    rounds: Annotated[int, typer.Option(min=1, max=10, help="Throughput turns per mode")] = 3,
) -> None:
    """Patroni (etcd, primary, replica, HAProxy): ingest with synchronous vs asynchronous
    replication side by side, and the primary killed under load (db_failover_s, lost rows)."""
    from .bench._publisher import Fleet
    from .bench.failover_db import main as run

    run(Fleet(rate, seconds, batch, aps), Fleet(fault_rate, fault_seconds, batch, aps), rounds)


@app.command("api-proxy-config")
def api_proxy_config(  # noqa: PLR0917  # typer maps each option to a parameter
    api: Annotated[list[str], typer.Option(help="An `ioc api` process, HOST:PORT (repeat)")],
    postgres: Annotated[
        list[str] | None,
        typer.Option(help="A Patroni node, HOST:PG_PORT:REST_PORT (repeat): adds the database"),
    ] = None,
    bind: Annotated[str, typer.Option(help="Address HAProxy listens on")] = "0.0.0.0",  # noqa: S104  # a proxy serves the network
    port: Annotated[int, typer.Option(help="The console API's port on HAProxy")] = 8080,
    primary_port: Annotated[int, typer.Option(help="The primary's port on HAProxy")] = 5000,
    replica_port: Annotated[int, typer.Option(help="The replicas' port on HAProxy")] = 5001,
) -> None:
    """Print haproxy.cfg for the console API processes (and the Patroni nodes)."""
    from .haproxy import Backend, Server, render_config

    def address(text: str, parts: int) -> list[str]:
        fields = text.rsplit(":", parts - 1)
        if len(fields) != parts or not all(f[-1:].isdigit() for f in fields[1:]):
            raise typer.BadParameter(f"{text!r}: expected {'HOST' + ':PORT' * (parts - 1)}")
        return fields

    apis = tuple(
        Server(f"api{i}", h, int(p)) for i, (h, p) in enumerate(address(a, 2) for a in api)
    )
    backends = [Backend("console_api", apis, "http-api", port, bind)]
    if postgres:
        nodes = tuple(
            Server(f"pg{i}", h, int(p), int(r))
            for i, (h, p, r) in enumerate(address(n, 3) for n in postgres)
        )
        backends += [
            Backend("postgres_primary", nodes, "patroni-primary", primary_port, bind),
            Backend("postgres_replicas", nodes, "patroni-replica", replica_port, bind),
        ]
    typer.echo(render_config(backends))


@bench_app.command("history")
def bench_history(
    cameras: Annotated[int, typer.Option(help="Cameras (two counting lines each)")] = 200,
    days: Annotated[int, typer.Option(help="Days of minute-level traffic")] = 30,
    repeat: Annotated[int, typer.Option(help="Runs per rollup query (best is kept)")] = 9,
) -> None:
    """Planner queries from the rollups vs the raw table, on 30 days of traffic."""
    from .bench.history import main as run

    run(cameras, days, repeat)


@bench_app.command("fiware")
def bench_fiware(
    points: Annotated[int, typer.Option(min=1, help="Entities in the answer")] = 20_000,
) -> None:
    """Peak memory of one FIWARE TrafficFlowObserved answer (tracemalloc), per entity."""
    from .bench.fiware import main as run

    run(points)


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


@open311_keys.command("add")
def open311_key_add(name: str) -> None:
    """Issue (or replace) the API key of a client application; it is printed once."""
    from .citizens_commands import add_open311_key

    add_open311_key(_settings(), name)


@open311_keys.command("revoke")
def open311_key_revoke(name: str) -> None:
    """Stop a client application's key working (posting answers 403)."""
    from .citizens_commands import revoke_open311_key

    revoke_open311_key(_settings(), name)


@open311_keys.command("list")
def open311_key_list() -> None:
    """Client applications with a key, when it was issued and whether it is revoked."""
    from .citizens_commands import show_open311_keys

    show_open311_keys(_settings())


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


@bench_app.command("page")
def bench_page(
    alerts: Annotated[int, typer.Option(min=10, max=5000, help="Open alerts seeded")] = 1000,
    rate: Annotated[float, typer.Option(min=1, max=500, help="Alert changes per second")] = 50.0,
    seconds: Annotated[float, typer.Option(min=1, max=600, help="Storm length")] = 30.0,
    baseline_static: Annotated[
        Path | None, typer.Option(help="Another page's static files, measured first as a baseline")
    ] = None,
) -> None:
    """The operations-room page in Chromium under an alert storm: change->row, long tasks."""
    from .bench.page import run

    _settings()
    typer.echo(json.dumps(run(alerts, rate, seconds, baseline_static)))


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
    failover: Annotated[
        bool,
        typer.Option(
            help="Every tier doubled (Patroni behind HAProxy, two API processes behind "
            "HAProxy, a standby vision worker per shard, two Mosquittos); the faults are a "
            "vision worker, an API process, the database primary and the first broker "
            "killed (SIGKILL); reports each recovery time and lost_samples, "
            "lost_alert_changes, lost_cap"
        ),
    ] = False,
    broker_failover: Annotated[
        bool,
        typer.Option(
            help="Two independent Mosquittos; the one fault is the first's death, mid-run"
        ),
    ] = False,
    db_failover: Annotated[
        bool,
        typer.Option(
            help="The database is Patroni (primary, synchronous replica, etcd) behind "
            "HAProxy; its primary is killed instead of a restart (reports db_failover_s)"
        ),
    ] = False,
    api_failover: Annotated[
        bool,
        typer.Option(
            help="Two API processes behind HAProxy; one is killed instead of an API restart "
            "(reports api_failover_s)"
        ),
    ] = False,
) -> None:
    """The province under load while broker, database and each worker restart in turn;
    exits 1 on any telemetry, event, police or websocket loss or duplicate."""
    from .bench._files import Size
    from .soak import main as run

    _settings()
    size = Size(cameras, fps, aps, shards, operators=2)
    raise typer.Exit(
        run(
            size,
            minutes,
            drain,
            keep,
            failover=failover,
            broker_failover=broker_failover,
            db_failover=db_failover,
            api_failover=api_failover,
        )
    )


@forecast_app.command("predict")
def forecast_predict(
    csv: Annotated[Path, typer.Option(help="Hourly observations: I-94 format or time,value")],
    horizon: Annotated[int, typer.Option(min=1, max=24 * 60, help="Hours to forecast")],
    holidays: Annotated[
        str | None,
        typer.Option(
            help="ISO country code of public holidays [default: the file's holiday column"
            " if it has one, else VN]"
        ),
    ] = None,
) -> None:
    """Print exactly HORIZON forecast JSON lines (80% interval as low/high); logs to stderr."""
    from forecast import SeriesError, UnknownCountry
    from forecast._cli import forecast_lines, predict

    _settings()
    try:
        result = predict(csv, horizon, holidays)
    except (SeriesError, UnknownCountry) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    sys.stdout.write("".join(line + "\n" for line in forecast_lines(result)))


@forecast_app.command("run")
def forecast_run() -> None:
    """Hourly 48-hour and nightly 14-day forecasts of every line, road, district and site,
    and anomaly alerts (IOC_FORECAST_HOLIDAYS, IOC_FORECAST_ANOMALY_HOURS)."""
    from .forecast_commands import run_forecast

    run_forecast(_settings())


@forecast_app.command("backtest")
def forecast_backtest(  # noqa: PLR0917  # typer maps each option to a parameter
    csv: Annotated[Path, typer.Option(help="Hourly observations: I-94 format or time,value")],
    start: Annotated[str, typer.Option("--from", help="First origin (ISO time)")],
    end: Annotated[str, typer.Option("--to", help="Last origin (ISO time)")],
    horizon: Annotated[list[int], typer.Option(help="Hours ahead; repeat for several")],
    every: Annotated[int, typer.Option(min=1, help="Hours between origins")] = 24,
    holidays: Annotated[
        str | None, typer.Option(help="ISO country code [default: as predict]")
    ] = None,
) -> None:
    """Held-out check: forecasts from rolling origins against both baselines, JSON per
    horizon (each origin sees only the hours before it)."""
    from datetime import datetime

    from forecast import Calendar, read_csv
    from forecast._backtest import held_out

    _settings()
    series = read_csv(csv)
    country = holidays or (None if series.marks_holidays else "VN")
    for hours in horizon:
        result = held_out(
            series,
            datetime.fromisoformat(start),
            datetime.fromisoformat(end),
            hours,
            every=min(every, hours),
            calendar=Calendar(country),
        )
        print(json.dumps(result.as_json()))


@bench_app.command("forecast")
def bench_forecast(
    series: Annotated[int, typer.Option(min=1, help="Hourly series to fit")] = 500,
    days: Annotated[int, typer.Option(min=21, help="Days of history per series")] = 90,
    source: Annotated[Path | None, typer.Option(help="I-94 format CSV to cut series from")] = None,
) -> None:
    """Fit and forecast SERIES hourly series; one JSON line with speed and skill."""
    from forecast._cli import bench, i94_file

    _settings()
    print(json.dumps(bench(series, days, source or i94_file())))


def main() -> None:
    try:
        app()
    except (ConfigError, NotConfigured) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
