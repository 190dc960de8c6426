"""Each service process reports its counters on MQTT, so a status board (the demo, the
benchmarks, an operator's terminal) can watch services running as separate processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import aiomqtt
import psutil

from protocol import (
    SERVICE_STATUS,
    Background,
    MqttEndpoint,
    ServiceStatus,
    Topics,
    Work,
)

logger = logging.getLogger(__name__)


def counters_of(stats: Any) -> dict[str, float]:
    """The numeric fields of a stats dataclass."""
    return {
        f.name: float(getattr(stats, f.name))
        for f in dataclasses.fields(stats)
        if isinstance(getattr(stats, f.name), int | float)
    }


class StatusReporter(Background):
    """Publishes a retained :class:`ServiceStatus` every ``period`` seconds; the broker's
    last will marks the service stopped if the process dies."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        topics: Topics,
        instance: str,
        service: str,
        counters: Callable[[], dict[str, float]],
        *,
        period: float = 2.0,
        state: Literal["running", "standby"] = "running",
    ) -> None:
        self.endpoint = endpoint
        self.topics = topics
        self.instance = instance
        self.service = service
        self.counters = counters
        self.period = period
        self.state: Literal["running", "standby"] = state
        self._changed = asyncio.Event()
        self.started = time.time()
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent()  # first call primes the measurement

    def _status(
        self, status: Literal["running", "standby", "stopped"], *, final: bool = False
    ) -> bytes:
        """``final``: the last report of a graceful stop, with the final counters (a last
        will, made at connect time, carries none)."""
        memory = self._process.memory_info().rss / 2**20
        return SERVICE_STATUS.encode(
            ServiceStatus(
                instance=self.instance,
                service=self.service,
                status=status,
                pid=os.getpid(),
                started_at=self.started,
                reported_at=time.time(),
                cpu_percent=self._process.cpu_percent(),
                rss_mb=round(memory, 1),
                counters=self.counters() if status == "running" or final else {},
            )
        )

    def set_state(self, state: Literal["running", "standby"]) -> None:
        """Report ``state`` from now on, the first time at once."""
        self.state = state
        self._changed.set()

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        return {f"status-{self.instance}": self._run()}

    async def _run(self) -> None:
        topic = self.topics.service_status(self.instance)
        will = aiomqtt.Will(topic, self._status("stopped"), qos=1, retain=True)
        while not self._stopping:
            try:
                async with self.endpoint.client(f"status-{self.instance}", will=will) as client:
                    while not self._stopping:
                        self._changed.clear()
                        await client.publish(topic, self._status(self.state), qos=1, retain=True)
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.period):  # the report period
                                await self._changed.wait()
                    final = self._status("stopped", final=True)
                    await client.publish(topic, final, qos=1, retain=True)
            except aiomqtt.MqttError as exc:
                logger.debug("status reporter lost the broker: %s", exc)
                await asyncio.sleep(self.period)
