"""``ioc alerts run`` as production runs it: a process with configured servers. It turns an
event into an MQTT alert change, takes new rules on SIGHUP, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiomqtt
import pytest
import yaml
from conftest import DATA, ROOT

from ioc.servers import MosquittoBroker
from protocol import ALERT, EVENT, AlertMessage, EventKind, MqttEndpoint, Topics, VisionEvent
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def _write_rules(path: Path, severity: str) -> None:
    doc = {"rules": [{"match": {"kinds": ["crowd"]}, "severity": severity}]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc), encoding="utf-8")
    os.replace(tmp, path)


async def _log_line(process: asyncio.subprocess.Process, text: bytes) -> None:
    """Read the service's log until a line holds ``text``; fail if the log ends first."""
    assert process.stderr is not None
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        assert line, f"the service ended before logging {text!r}"
        if text in line:
            return


async def _next_change(client: aiomqtt.Client) -> AlertMessage:
    async def first() -> AlertMessage:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return ALERT.decode(message.payload)
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(first(), 30)


async def test_the_service_process_alerts_reloads_on_sighup_and_stops_on_sigterm(
    mosquitto: MosquittoBroker, topics: Topics, database: StoreConfig, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    _write_rules(rules, "minor")
    env = {
        **os.environ,
        "IOC_MQTT_URL": mosquitto.url,
        "IOC_DATABASE_URL": database.url,
        "IOC_TOPIC_PREFIX": topics.prefix,
        "IOC_PROVINCE": str(DATA / "clips.yaml"),
        "IOC_ALERT_RULES": str(rules),
        "IOC_LOG_LEVEL": "INFO",
    }
    mqtt = MqttEndpoint.from_url(mosquitto.url)
    async with mqtt.client(f"svc-{topics.prefix.split('/')[0]}") as client:
        await client.subscribe(topics.all_alerts(), qos=1)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ioc",
            "alerts",
            "run",
            env=env,
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await _log_line(process, b"alerts service running")

            async def crowd(zone: str) -> AlertMessage:
                event = VisionEvent(
                    event_id=f"svc-{zone}",
                    kind=EventKind.CROWD,
                    camera_id="indoor-room",
                    phase="start",
                    started_at=time.time(),
                    zone_id=zone,
                )
                await client.publish(topics.events("indoor-room"), EVENT.encode(event), qos=1)
                return await _next_change(client)

            first = await crowd("floor")
            assert (first.kind, first.severity, first.change) == ("crowd", "minor", "opened")

            _write_rules(rules, "critical")
            process.send_signal(signal.SIGHUP)
            await _log_line(process, b"rules reloaded")
            second = await crowd("door")
            assert second.severity == "critical"

            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), 30)
            assert process.returncode == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
