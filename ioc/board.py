"""A live status board fed by the services' retained status messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiomqtt
from rich.table import Table

from protocol import SERVICE_STATUS, MqttEndpoint, PayloadError, ServiceStatus, Topics, stop_tasks

logger = logging.getLogger(__name__)

# The counter that best says "work done" for each service, and how to label its rate.
HEADLINE = {
    "vision": ("frames_processed", "frames/s analysed"),
    "ingest": ("samples_written", "rows/s stored"),
    "alerts": ("events", "events/s"),
    "simulator": ("frames_published", "frames/s published"),
}


@dataclass
class _Seen:
    latest: ServiceStatus
    previous: ServiceStatus | None = None
    rates: dict[str, float] = field(default_factory=dict)


class StatusBoard:
    """Subscribes to ``services/+/status`` and keeps the latest report and rates per service."""

    def __init__(self, endpoint: MqttEndpoint, topics: Topics) -> None:
        self.endpoint = endpoint
        self.topics = topics
        self.services: dict[str, _Seen] = {}
        self._stack = contextlib.AsyncExitStack()
        self._stopping = False

    async def __aenter__(self) -> Self:
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._tasks = [group.create_task(self._listen(), name="status-board")]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        await stop_tasks(self._tasks)
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                async with self.endpoint.client(f"status-board-{time.time_ns()}") as client:
                    await client.subscribe(self.topics.all_service_status(), qos=1)
                    async for message in client.messages:
                        if isinstance(message.payload, bytes):
                            self._take(message.payload)
            except aiomqtt.MqttError as exc:
                logger.debug("status board lost the broker: %s", exc)
                await asyncio.sleep(1.0)

    def _take(self, payload: bytes) -> None:
        try:
            status = SERVICE_STATUS.decode(payload)
        except PayloadError as exc:
            logger.warning("unreadable service status: %s", exc.reason)
            return
        seen = self.services.get(status.instance)
        if seen is None or seen.latest.pid != status.pid:
            self.services[status.instance] = _Seen(status)
            return
        span = status.reported_at - seen.latest.reported_at
        if span > 0:
            seen.rates = {
                name: (value - seen.latest.counters.get(name, 0.0)) / span
                for name, value in status.counters.items()
            }
        seen.previous, seen.latest = seen.latest, status

    def total(self, service: str, counter: str) -> float:
        return sum(
            s.latest.counters.get(counter, 0.0)
            for s in self.services.values()
            if s.latest.service == service
        )

    def rate(self, service: str, counter: str) -> float:
        return sum(
            s.rates.get(counter, 0.0)
            for s in self.services.values()
            if s.latest.service == service and s.latest.status == "running"
        )

    def table(self, title: str) -> Table:
        table = Table(title=title)
        for column in ("service", "state", "rate", "CPU %", "RSS MB"):
            table.add_column(column, justify="left" if column == "service" else "right")
        for name in sorted(self.services):
            status = self.services[name].latest
            counter, label = HEADLINE.get(status.service, ("", ""))
            rate = self.services[name].rates.get(counter)
            table.add_row(
                name,
                status.status,
                f"{rate:,.0f} {label}" if rate is not None else "",
                f"{status.cpu_percent:.0f}",
                f"{status.rss_mb:.0f}",
            )
        return table
