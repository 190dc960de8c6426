"""``ioc forecast run`` as the demo starts it: it forecasts the registry's series at start
(both resolutions) and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
import pytest
from conftest import DATA, ROOT

from ioc.servers import MosquittoBroker
from protocol import Topics
from store import StoreConfig
from store.forecasts import Resolution, forecast_series

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


async def _log_line(process: asyncio.subprocess.Process, text: bytes) -> None:
    assert process.stderr is not None
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), 120)
        assert line, f"the service ended before logging {text!r}"
        if text in line:
            return


async def test_forecast_run_refreshes_and_stops_on_sigterm(
    mosquitto: MosquittoBroker, topics: Topics, database: StoreConfig, db: asyncpg.Connection
) -> None:
    env = {
        **os.environ,
        "IOC_MQTT_URL": mosquitto.url,
        "IOC_DATABASE_URL": database.url,
        "IOC_TOPIC_PREFIX": topics.prefix,
        "IOC_PROVINCE": str(DATA / "clips.yaml"),
        "IOC_LOG_LEVEL": "INFO",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ioc",
        "forecast",
        "run",
        env=env,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _log_line(process, b"forecast refresh (hour)")
        assert await forecast_series(db, Resolution.HOUR)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
