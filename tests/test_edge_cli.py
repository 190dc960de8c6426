"""``ioc edge`` as a process: birth, the broker's last will when it is killed, numbers that
carry on after a restart, a clean goodbye on SIGTERM; ``ioc mosquitto-config``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from edge_support import Recorder
from typer.testing import CliRunner

from ioc.cli import app
from protocol import CAMERA_STATE, EDGE_STATE, TELEMETRY, MqttEndpoint, Topics

ROOT = Path(__file__).resolve().parent.parent
PARKING = "data/video/parking_lot_overhead_768x432.mp4"


def _config(tmp_path: Path, topics: Topics) -> Path:
    config = {
        "agent_id": "edge-cli",
        "cameras": [
            {
                "id": "cam-cli",
                "name": "CLI camera",
                "kind": "traffic",
                "district": "d",
                "lat": 10.0,
                "lon": 106.0,
                "source": PARKING,
                "fps": 2,
            }
        ],
        "access_points": [
            {"id": "ap-cli", "name": "AP", "site": "s", "district": "d", "lat": 0, "lon": 0}
        ],
        "mqtt": {"topic_prefix": topics.prefix, "reconnect_max": 0.5},
        "camera_options": {"media_dir": str(ROOT)},
        "wifi": {"collectors": [{"kind": "simulated"}], "poll_period": 0.05, "batch_period": 0.1},
        "spool": {"path": "spool.sqlite"},
        "state_period": 0.5,
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(config: Path, mqtt: MqttEndpoint) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IOC_MQTT_URL": f"mqtt://{mqtt.host}:{mqtt.port}",
        "IOC_LOG_LEVEL": "INFO",
    }
    with (config.parent / "edge.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ioc", "edge", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _states(seen: Recorder, topic: str) -> list[str]:
    return [EDGE_STATE.decode(p).status for p in seen.on(topic)]


@pytest.mark.mosquitto
async def test_agent_process_lifecycle(tmp_path: Path, mqtt: MqttEndpoint, topics: Topics) -> None:
    config = _config(tmp_path, topics)
    edge_topic = topics.edge_state("edge-cli")
    telemetry = topics.telemetry("ap-cli")
    async with Recorder(mqtt, [f"{topics.prefix}/#"]) as seen:
        first = _start(config, mqtt)
        try:
            await seen.wait_for(
                lambda: (
                    "online" in _states(seen, edge_topic)
                    and len(seen.on(telemetry)) >= 2
                    and bool(seen.on(topics.frames("cam-cli")))
                )
            )
        finally:
            first.kill()  # no goodbye: the broker's last will speaks for it
            await asyncio.to_thread(first.wait, 30)
        await seen.wait_for(lambda: _states(seen, edge_topic)[-1] == "offline")
        sent = {TELEMETRY.decode(p).seq: p for p in seen.on(telemetry)}
        count = len(seen.on(telemetry))

        second = _start(config, mqtt)
        try:
            await seen.wait_for(
                lambda: (
                    _states(seen, edge_topic)[-1] == "online"
                    and any(TELEMETRY.decode(p).seq > max(sent) for p in seen.on(telemetry)[count:])
                )
            )
            after = {TELEMETRY.decode(p).seq: p for p in seen.on(telemetry)[count:]}
            # A batch the killed agent sent without a receipt (no ingest runs here) comes
            # again, unchanged (the centre keeps it once); every new batch numbers higher.
            repeats = after.keys() & sent.keys()
            assert all(after[seq] == sent[seq] for seq in repeats)
            assert min(after.keys() - repeats) > max(sent)
            second.terminate()
            code = await asyncio.to_thread(second.wait, 30)
        finally:
            second.kill()
        assert code == 0, (tmp_path / "edge.log").read_text()
        await seen.wait_for(lambda: _states(seen, edge_topic)[-1] == "offline")
        final = CAMERA_STATE.decode(seen.on(topics.camera_state("cam-cli"))[-1])
        assert (final.status, final.detail) == ("offline", "edge agent stopped")


def test_agent_refuses_a_config_without_its_environment(tmp_path: Path) -> None:
    config = _config(tmp_path, Topics())
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    result = subprocess.run(
        [sys.executable, "-m", "ioc", "edge", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "$IOC_MQTT_URL (the broker URL) is not set" in result.stderr


def test_mosquitto_config_command_writes_the_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["mosquitto-config", "--out", str(tmp_path / "auth"), "--service", "ingest"],
        env={"IOC_MQTT_PASSWORD_INGEST": "ingest-password"},
    )
    assert result.exit_code == 0, result.output
    acl = (tmp_path / "auth" / "acl").read_text()
    assert "user edge-my-tho" in acl
    assert "user ingest" in acl
    assert "user vision" not in acl
    env_file = (tmp_path / "auth" / "credentials" / "ingest.env").read_text()
    assert "IOC_MQTT_PASSWORD=ingest-password" in env_file
    assert "ingest-password" not in result.output
