"""`ioc demo` as a new user runs it: embedded broker, private PostgreSQL, services as
processes, live status, a clean stop with nothing left behind."""

from __future__ import annotations

import os
import re
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


def test_demo_runs_for_its_duration_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "IOC_PROVINCE": str(_small_province(tmp_path / "province.yaml")),
        "IOC_STATE_DIR": str(tmp_path / "state"),
        "IOC_API_PORT": str(free_port()),
    }
    env.pop("IOC_MQTT_URL", None)
    env.pop("IOC_DATABASE_URL", None)
    before = {p.pid for p in psutil.process_iter()}
    result = subprocess.run(
        [sys.executable, "-m", "ioc", "demo", "--duration", "20", "--vision-workers", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stderr
    assert "Stopped cleanly." in out
    totals = re.search(
        r"Totals: ([\d,]+) frames published, ([\d,]+) analysed, .*?"
        r"([\d,]+) telemetry samples stored",
        out,
        re.S,
    )
    assert totals is not None, out[-3000:]
    published, analysed, stored = (int(g.replace(",", "")) for g in totals.groups())
    assert published > 0
    assert analysed > 0
    assert stored > 0
    for service in ("ingest-1", "alerts-1", "vision-1-of-1", "sim-1"):
        assert service in out
    credentials = tmp_path / "state" / "demo-credentials"
    assert credentials.stat().st_mode & 0o077 == 0
    # Nothing left behind: no new postgres or ioc processes.
    leftovers = [
        p
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.pid not in before and any(str(tmp_path) in part for part in (p.info["cmdline"] or []))
    ]
    assert leftovers == []
