"""``ioc demo``: the whole province on one machine, every service in its own process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from citizens import DemoCitizen, add_key
from console_api import Role, add_user
from edge import Incident, incident_targets, load_incidents
from protocol import Severity
from store import Connection, StoreConfig, connect

from .alerts_commands import AlertsSettings
from .backfill import BackfillReport, backfill
from .board import StatusBoard
from .evidence_commands import demo_environment
from .runtime import DEMO_DATABASE_FILE, Infrastructure, infrastructure
from .servers import free_port
from .settings import PROJECT_ROOT, Settings
from .supervisor import Supervisor

DEFAULT_INCIDENTS = PROJECT_ROOT / "config" / "incidents-demo.yaml"
DEMO_USERS = (
    ("operator", Role.OPERATOR),
    ("police", Role.POLICE),
    ("planner", Role.PLANNER),
    ("admin", Role.ADMIN),
)
POLICE_KEY_VARIABLE = "IOC_POLICE_SECRET_DEMO"
SEVERITIES = (Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.INFO)

logger = logging.getLogger(__name__)


class DemoAlreadyRunning(RuntimeError):
    """Another demo holds the state folder; ``pid`` is its process id (as it wrote it)."""

    def __init__(self, state_dir: Path, pid: str) -> None:
        super().__init__(
            f"a demo is already running in {state_dir.resolve()} (PID {pid or '?'}); stop it "
            f"first (Ctrl-C in its terminal, or kill {pid or '<pid>'}), or give this one "
            "another folder with IOC_STATE_DIR"
        )
        self.state_dir = state_dir
        self.pid = pid


@contextlib.contextmanager
def demo_lock(state_dir: Path) -> Iterator[None]:
    """Hold ``state_dir/demo.pid`` locked (with our PID in it) while the demo runs. The lock
    goes with the process, so a demo that was killed leaves nothing to clean up."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "demo.pid", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoAlreadyRunning(state_dir, os.read(fd, 32).decode().strip()) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


async def _demo_users(store: StoreConfig, state_dir: Path) -> tuple[Path, str]:
    """Create the demo's users with fresh passwords and an Open311 key, kept in a file only
    we can read."""
    passwords = {name: secrets.token_urlsafe(12) for name, _ in DEMO_USERS}
    conn = await connect(store)
    try:
        for name, role in DEMO_USERS:
            await add_user(conn, name, role, passwords[name])
        open311 = await add_key(conn, "demo-citizen-app")  # Open311 posting (DESIGN.md)
    finally:
        await conn.close()
    credentials = state_dir / "demo-credentials"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.touch(mode=0o600)
    credentials.write_text(
        "".join(f"{name} {passwords[name]}\n" for name, _ in DEMO_USERS) + f"open311 {open311}\n"
    )
    return credentials, open311


def _private_file(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(text)


def police_rules(source: Path, state_dir: Path, port: int) -> Path:
    """The alert rules of ``source`` with the demo's police receiver as an endpoint (every
    district), written to ``state_dir/alert-rules.yaml`` for the demo's alerts service."""
    rules = yaml.safe_load(source.read_text(encoding="utf-8"))
    police = rules.setdefault("police", {})
    police["endpoints"] = [
        *(police.get("endpoints") or []),
        {
            "id": "demo-police",
            "url": f"http://127.0.0.1:{port}/cap",
            "secret_env": POLICE_KEY_VARIABLE,
            "districts": [],
            "timeout_seconds": 5,
            "allow_plain_http": True,  # the demo's own receiver on loopback
        },
    ]
    target = state_dir / "alert-rules.yaml"
    header = f"# Written by `ioc demo` from {source}, plus its police receiver; edit that file.\n"
    target.write_text(header + yaml.safe_dump(rules, allow_unicode=True, sort_keys=False))
    return target


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
        **demo_environment(settings),
    }


async def start_province(
    supervisor: Supervisor,
    vision_workers: int,
    incidents: Path | None = None,
    police_port: int | None = None,
) -> None:
    if police_port is not None:
        await supervisor.add("police", "police-receiver", "--port", str(police_port))
    await supervisor.add("ingest", "ingest", "--identifier", "ingest-1")
    await supervisor.add("alerts", "alerts", "run")
    await supervisor.add("forecast", "forecast", "run")
    for i in range(1, vision_workers + 1):
        await supervisor.add(f"vision-{i}", "vision", "run", "--shard", f"{i}/{vision_workers}")
    await supervisor.add("api", "api")
    script = ("--incidents", str(incidents)) if incidents is not None else ()
    await supervisor.add("simulator", "simulate", *script)


def restarts(supervisor: Supervisor) -> str:
    """Which services the supervisor had to start again, and how often ("none" when none):
    a service in a crash loop shows here even though the supervisor keeps it running."""
    again = {n: s.starts - 1 for n, s in supervisor.services.items() if s.starts > 1}
    return ", ".join(f"{n} {k}" for n, k in sorted(again.items())) or "none"


def _summary(
    board: StatusBoard, by_severity: dict[str, int], open_incidents: int, restarted: str = "none"
) -> Table:
    table = Table(show_header=True)
    for column in (
        "frames/s analysed",
        "telemetry rows/s",
        "open alerts: critical/major/minor/info",
        "open incidents",
        "dropped frames",
        "dead letters",
        "restarts",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        f"{board.rate('vision', 'frames_processed'):,.0f}",
        f"{board.rate('ingest', 'samples_written'):,.0f}",
        f"{sum(by_severity.values()):,}: "
        + "/".join(f"{by_severity.get(severity, 0):,}" for severity in SEVERITIES),
        f"{open_incidents:,}",
        f"{board.total('vision', 'frames_dropped'):,.0f}",
        f"{board.total('ingest', 'dead_letters') + board.total('alerts', 'dead_letters'):,.0f}",
        restarted,
    )
    return table


async def open_counts(conn: Connection) -> tuple[int, int]:
    """Unresolved alerts, and the incidents they make (what operators' list shows)."""
    record = await conn.fetchrow(
        """SELECT count(*) AS alerts, count(DISTINCT incident_id) AS incidents
           FROM alerts WHERE state <> 'resolved'"""
    )
    return (record["alerts"], record["incidents"]) if record else (0, 0)


class History:
    """The first start's backfill, run beside the services; its line on the board."""

    def __init__(self) -> None:
        self.report: BackfillReport | None = None
        self.error: str | None = None
        self.done = False

    async def run(self, infra: Infrastructure, supervisor: Supervisor | None = None) -> None:
        try:
            self.report = await backfill(infra.store, infra.province)
        except Exception as exc:  # the demo goes on without history; the board says why
            logger.exception("history backfill failed")
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done = True
        # The forecast service started beside the backfill, on no history (baselines of
        # nothing); started again, it forecasts from the 90 days at once, not an hour later.
        forecast = supervisor.services.get("forecast") if supervisor is not None else None
        if self.report is not None and forecast is not None and forecast.running:
            logger.info("history backfilled: restarting the forecast service")
            await forecast.restart()

    def line(self) -> str:
        if not self.done:
            return "History: backfilling 90 days of traffic and Wi-Fi ..."
        if self.error is not None:
            return f"History: backfill failed ({self.error})"
        if self.report is None:
            return "History: kept from an earlier start (the store was not empty)"
        r = self.report
        return (
            f"History: {r.days} days backfilled ({r.traffic_rows:,} traffic and "
            f"{r.wifi_rows:,} Wi-Fi rows) in {r.seconds:.1f} s"
        )


async def open_by_severity(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT severity, count(*) AS n FROM alerts WHERE state <> 'resolved' GROUP BY severity"
    )
    return {row["severity"]: row["n"] for row in rows}


_EXPECTED = {
    "camera_covered": "camera_tamper",
    "camera_offline": "camera_offline",
    "ap_down": "ap_down",
    "stalled_vehicle": "stopped_vehicle",
    "wrong_way": "wrong_way",
    "intrusion": "intrusion",
    "congestion": "congestion",
}


async def incidents_seen(
    conn: Connection, infra: Infrastructure, script: list[Incident], since: float, elapsed: float
) -> tuple[int, int, list[str]]:
    """Scripted incidents started by ``elapsed`` seconds, how many of them opened their own
    alert since ``since`` (epoch), and the ones that did not."""
    started = [i for i in script if i.at <= elapsed]
    rows = await conn.fetch(
        "SELECT DISTINCT kind, source_id FROM alerts WHERE opened_at >= to_timestamp($1)", since
    )
    opened = {(row["kind"], row["source_id"]) for row in rows}
    missing = []
    for incident in started:
        if incident.kind == "crowd":
            sources = {a.id for a in infra.province.access_points if a.site == incident.target}
            wanted = {("ap_overload", s) for s in sources} | {("crowd", incident.target)}
        else:
            wanted = {(_EXPECTED[incident.kind], incident.target)}
        if not wanted & opened:
            missing.append(f"{incident.kind} {incident.target}")
    return len(started), len(started) - len(missing), missing


async def run_demo(
    settings: Settings,
    duration: float | None,
    console: Console,
    vision_workers: int,
    incidents: Path | None = None,
) -> None:
    started = time.monotonic()
    started_wall = time.time()
    incidents = incidents or DEFAULT_INCIDENTS
    # Ctrl-C (SIGINT) and SIGTERM end the watch; the services then stop in order and the
    # totals are printed, as at the end of --duration.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    state_dir = settings.state_dir
    async with contextlib.AsyncExitStack() as stack:
        console.print(
            "[bold]Starting the province[/] (a private broker and database unless "
            "IOC_MQTT_URL / IOC_DATABASE_URL are set) ..."
        )
        infra = await stack.enter_async_context(infrastructure(settings, embedded=True))
        script = load_incidents(incidents, incident_targets(infra.province))
        console.print(f"Broker: {infra.broker_note}. Database: {infra.store_note}.", soft_wrap=True)
        if settings.database_url is None:
            database_file = state_dir / DEMO_DATABASE_FILE
            _private_file(database_file, infra.store.url + "\n")
            stack.callback(database_file.unlink, missing_ok=True)
            console.print(
                f"Database URL in {database_file} (`ioc users add` and the other commands "
                "find it there while the demo runs).",
                soft_wrap=True,
            )
        credentials, open311_key = await _demo_users(infra.store, state_dir)
        board = await stack.enter_async_context(StatusBoard(infra.endpoint, infra.topics))
        environment = child_environment(settings, infra)
        police_port = free_port()
        environment[POLICE_KEY_VARIABLE] = "whsec_" + base64.b64encode(
            secrets.token_bytes(24)
        ).decode("ascii")
        environment["IOC_ALERT_RULES"] = str(
            police_rules(AlertsSettings().alert_rules, state_dir, police_port).resolve()
        )
        supervisor = await stack.enter_async_context(Supervisor(environment, state_dir / "logs"))
        history = History()
        filling = asyncio.create_task(history.run(infra, supervisor), name="history backfill")
        stack.push_async_callback(_finish, filling)
        await start_province(supervisor, vision_workers, incidents, police_port)
        # A citizen reports a stalled vehicle near the first cameras that see one.
        await stack.enter_async_context(
            DemoCitizen(infra.store, f"http://{settings.api_host}:{settings.api_port}", open311_key)
        )
        console.print(
            f"Console on http://{settings.api_host}:{settings.api_port} (users "
            f"{', '.join(name for name, _ in DEMO_USERS)}; passwords in {credentials}); "
            f"{len(infra.province.cameras)} cameras, "
            f"{len(infra.province.access_points)} access points, {len(script)} scripted "
            f"incidents from {incidents}; police receiver on 127.0.0.1:{police_port}; "
            f"service logs in {supervisor.log_dir}." + ("" if duration else " Ctrl-C stops."),
            soft_wrap=True,
        )
        conn = await connect(infra.store)
        stack.push_async_callback(conn.close)
        await _watch(
            board,
            supervisor,
            conn,
            console,
            history=history,
            servers=f"Broker: {infra.broker_note}. Database: {infra.store_note}.",
            started=started,
            duration=duration,
            stop=stop,
        )
        open_alerts, open_incidents = await open_counts(conn)
        by_severity = await open_by_severity(conn)
        scripted, seen, missing = await incidents_seen(
            conn, infra, script, started_wall, time.monotonic() - started
        )
        if missing:
            console.print(f"Scripted incidents without an alert: {', '.join(missing)}")
        console.print(
            f"Stopping the services. Open now: {open_alerts:,} alerts in {open_incidents:,} "
            "incidents. "
            f"Totals: {board.total('simulator', 'frames_published'):,.0f} "
            f"frames published, {board.total('vision', 'frames_processed'):,.0f} analysed, "
            f"{board.total('vision', 'events_published'):,.0f} events, "
            f"{board.total('ingest', 'samples_written'):,.0f} telemetry samples stored, "
            f"{board.total('alerts', 'changes'):,.0f} alert changes.",
            soft_wrap=True,
        )
        totals = {
            "frames_published": int(board.total("simulator", "frames_published")),
            "frames_analysed": int(board.total("vision", "frames_processed")),
            "events": int(board.total("vision", "events_published")),
            "samples_stored": int(board.total("ingest", "samples_written")),
            "alert_changes": int(board.total("alerts", "changes")),
            "open_alerts": sum(by_severity.values()),
            "open_critical": by_severity.get(Severity.CRITICAL, 0),
            "incidents_scripted": scripted,
            "incidents_seen": seen,
        }
    console.print("Stopped cleanly.", style="green")
    if duration is not None:
        # The one machine-readable line, on stdout (everything else goes to stderr).
        print(json.dumps(totals), flush=True)


async def _watch(
    board: StatusBoard,
    supervisor: Supervisor,
    conn: Connection,
    console: Console,
    *,
    history: History,
    servers: str,
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
            _, open_incidents = await open_counts(conn)
            view = Group(
                board.table(f"Province demo, {time.monotonic() - started:,.0f} s"),
                _summary(board, await open_by_severity(conn), open_incidents, restarts(supervisor)),
                history.line(),
                servers,
            )
            if console.is_terminal:
                live.update(view, refresh=True)
            else:
                console.print(view)


async def _finish(task: asyncio.Task[None]) -> None:
    """Let a backfill that is still running end with the demo (its transaction rolls back)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(
    settings: Settings, duration: float | None, vision_workers: int, incidents: Path | None = None
) -> int:
    """Run the demo; the exit status (2: another demo holds the state folder)."""
    console = Console(stderr=True)
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        with demo_lock(settings.state_dir):
            asyncio.run(run_demo(settings, duration, console, vision_workers, incidents))
    except DemoAlreadyRunning as exc:
        console.print(f"[red]Not started: {exc}.[/]", soft_wrap=True)
        return 2
    return 0
