"""`ioc demo` as a new user runs it: embedded broker, private PostgreSQL, services as
processes, live status, a clean stop with nothing left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import ROOT

from ioc.servers import free_port

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


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "IOC_PROVINCE": str(_small_province(tmp_path / "province.yaml")),
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
}


def test_demo_works_until_ctrl_c_and_stops_cleanly(tmp_path: Path) -> None:
    """Run the demo until the board shows every stage working, then press Ctrl-C."""
    before = {p.pid for p in psutil.process_iter()}
    demo = subprocess.Popen(
        [sys.executable, "-m", "ioc", "demo", "--vision-workers", "1"],
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
    assert all(int(g.replace(",", "")) > 0 for g in totals.groups())
    credentials = tmp_path / "state" / "demo-credentials"
    assert credentials.stat().st_mode & 0o077 == 0
    assert _leftovers(tmp_path, before) == []


def test_demo_duration_exits_zero(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.process_iter()}
    result = subprocess.run(
        [sys.executable, "-m", "ioc", "demo", "--duration", "3", "--vision-workers", "1"],
        capture_output=True,
        text=True,
        env=_environment(tmp_path),
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Stopped cleanly." in result.stderr
    credentials = (tmp_path / "state" / "demo-credentials").read_text().split("\n")
    assert any(line.startswith("open311 ") and len(line) > 40 for line in credentials)
    assert _leftovers(tmp_path, before) == []
