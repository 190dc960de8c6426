"""A live status board fed by the services' retained status messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import aiomqtt
from rich.table import Table

from protocol import (
    SERVICE_STATUS,
    Background,
    MqttEndpoint,
    PayloadError,
    ServiceStatus,
    Topics,
    Work,
    unsolicited,
)

logger = logging.getLogger(__name__)

# The counter that best says "work done" for each service, and how to label its rate.
HEADLINE = {
    "vision": ("frames_processed", "frames/s analysed"),
    "ingest": ("samples_written", "rows/s stored"),
    "alerts": ("events", "events/s"),
    "simulator": ("frames_published", "frames/s published"),
    "api": ("requests", "requests/s"),
}


RATE_WINDOW = 10.0
"""Seconds over which rates are averaged: batches arrive every few seconds, and a rate
between two consecutive reports would swing between zero and a burst."""


@dataclass
class _Seen:
    latest: ServiceStatus
    window: deque[ServiceStatus] = field(default_factory=deque)
    rates: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    """The highest value of each counter this process reported: a last report with fewer or
    zeroed counters (a service going down) does not take back the work it did."""


class StatusFollower(Background):
    """Follows every service's retained report on ``services/+/status``, reconnecting when
    the broker goes away; subclasses say what to do with each report (:meth:`_took`)."""

    follower = "status-follower"

    def __init__(self, endpoint: MqttEndpoint, topics: Topics) -> None:
        self.endpoint = endpoint
        self.topics = topics

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        return {self.follower: self._listen()}

    async def _listen(self) -> None:
        wanted = aiomqtt.Wildcard(self.topics.all_service_status())
        while not self._stopping:
            try:
                async with self.endpoint.client(f"{self.follower}-{time.time_ns()}") as client:
                    await client.subscribe(wanted.value, qos=1)
                    async for message in client.messages:
                        if not message.topic.matches(wanted):
                            unsolicited(self.follower, message)
                        elif isinstance(message.payload, bytes):
                            await self._take(message.payload)
            except aiomqtt.MqttError as exc:
                logger.debug("%s lost the broker: %s", self.follower, exc)
                await asyncio.sleep(0.5)

    async def _take(self, payload: bytes) -> None:
        try:
            status = SERVICE_STATUS.decode(payload)
        except PayloadError as exc:
            logger.warning("unreadable service status: %s", exc.reason)
            return
        await self._took(status)

    async def _took(self, status: ServiceStatus) -> None:
        raise NotImplementedError


class StatusBoard(StatusFollower):
    """The latest report and rates per service."""

    follower = "status-board"

    def __init__(self, endpoint: MqttEndpoint, topics: Topics) -> None:
        super().__init__(endpoint, topics)
        self.services: dict[str, _Seen] = {}
        self._earlier: dict[tuple[str, str], float] = {}
        """Work counted by processes that have since been replaced (a restart), per
        (service, counter), so totals cover the whole run."""

    async def _took(self, status: ServiceStatus) -> None:
        seen = self.services.get(status.instance)
        if seen is None or seen.latest.pid != status.pid:
            if seen is not None:
                for name, value in seen.peaks.items():
                    key = (seen.latest.service, name)
                    self._earlier[key] = self._earlier.get(key, 0.0) + value
            seen = self.services[status.instance] = _Seen(status)
        seen.latest = status
        for name, value in status.counters.items():
            seen.peaks[name] = max(seen.peaks.get(name, 0.0), value)
        seen.window.append(status)
        while status.reported_at - seen.window[0].reported_at > RATE_WINDOW:
            seen.window.popleft()
        oldest = seen.window[0]
        span = status.reported_at - oldest.reported_at
        if span > 0:
            seen.rates = {
                name: (value - oldest.counters.get(name, 0.0)) / span
                for name, value in status.counters.items()
            }

    def total(self, service: str, counter: str) -> float:
        """All the work of ``service`` so far, its restarted processes included."""
        return self._earlier.get((service, counter), 0.0) + sum(
            s.peaks.get(counter, 0.0) for s in self.services.values() if s.latest.service == service
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
