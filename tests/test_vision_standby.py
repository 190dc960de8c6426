"""Two ``ioc vision run --lease`` processes for one shard: the first analyses, the second
waits as its standby, and takes the shard when the first is killed (SIGKILL)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import DATA
from edge_support import Recorder

from ioc.supervisor import ServiceProcess
from protocol import SERVICE_STATUS, MqttEndpoint, Topics
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def _said(recorder: Recorder, topics: Topics, instance: str, status: str) -> list[float]:
    """When ``instance`` reported ``status`` (running: analysing its shard)."""
    statuses = (SERVICE_STATUS.decode(p) for p in recorder.on(topics.service_status(instance)))
    return [s.reported_at for s in statuses if s.status == status]


async def test_the_standby_takes_the_shard_when_the_worker_is_killed(
    tmp_path: Path,
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
) -> None:
    env = {
        "IOC_MQTT_URL": f"mqtt://{mqtt.host}:{mqtt.port}",
        "IOC_DATABASE_URL": database.url,
        "IOC_PROVINCE": str(DATA / "clips.yaml"),
        "IOC_TOPIC_PREFIX": topics.prefix,
        "IOC_VISION_LEASE_TIMEOUT": "2",
        "IOC_VISION_LEASE_RETRY": "0.2",
    }

    def worker(name: str) -> ServiceProcess:
        args = ["vision", "run", "--shard", "1/1", "--lease", "--instance", name]
        return ServiceProcess(name, args, env, tmp_path)

    first, second = worker("vision-a"), worker("vision-b")
    async with Recorder(mqtt, [topics.all_service_status()]) as seen:
        try:
            await first.start()
            await seen.wait_for(lambda: bool(_said(seen, topics, "vision-a", "running")))
            await second.start()
            # It reports once it has tried the lease: standby, the shard being the first's.
            await seen.wait_for(lambda: bool(_said(seen, topics, "vision-b", "standby")))
            killed_at = time.time()
            await first.kill()
            await seen.wait_for(lambda: bool(_said(seen, topics, "vision-b", "running")))
        finally:
            await second.stop()
            await first.stop()
    # The standby analysed nothing while the first held the shard.
    assert min(_said(seen, topics, "vision-b", "running")) > killed_at
    assert "standby for vision shard 1/1" in (tmp_path / "vision-b.log").read_text()
