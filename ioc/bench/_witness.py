"""An independent witness of what the broker accepted: a persistent QoS 1 subscriber to the
telemetry and vision event topics, next to the services' own subscriptions. What it saw is
what the centre must have stored once the run has drained; repeats (an edge re-sending a
batch whose acknowledgement it lost) count once, as the store must count them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Self

import aiomqtt

from protocol import (
    EVENT,
    TELEMETRY,
    Background,
    MqttEndpoint,
    PayloadError,
    Topics,
    Work,
    run_subscriber,
)

logger = logging.getLogger(__name__)


@dataclass
class Witnessed:
    batches: dict[tuple[str, int], int] = field(default_factory=dict)
    """(ap_id, seq) -> samples in the batch."""
    events: dict[tuple[str, str], float] = field(default_factory=dict)
    """(event_id, phase) of every vision event -> when the witness had it (epoch s)."""
    repeats: int = 0
    unreadable: int = 0

    @property
    def samples(self) -> int:
        return sum(self.batches.values())


class Witness(Background):
    def __init__(self, endpoint: MqttEndpoint, topics: Topics, identifier: str) -> None:
        self.endpoint = endpoint
        self.topics = topics
        self.identifier = identifier
        self.seen = Witnessed()
        self.subscribed = asyncio.Event()

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        return {
            "witness": run_subscriber(
                self.endpoint,
                self.identifier,
                [(self.topics.all_telemetry(), 1), (self.topics.all_events(), 1)],
                self._take,
                persistent=True,
                on_connect=self._on_connect,
            )
        }

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        await self.subscribed.wait()
        return self

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self.subscribed.set()

    async def _take(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        seen = self.seen
        try:
            if message.topic.matches(self.topics.all_telemetry()):
                batch = TELEMETRY.decode(payload)
                key = (batch.ap_id, batch.seq)
                if key in seen.batches:
                    seen.repeats += 1
                else:
                    seen.batches[key] = len(batch.samples)
            else:
                event = EVENT.decode(payload)
                seen.events.setdefault((event.event_id, event.phase), time.time())
        except PayloadError as exc:
            seen.unreadable += 1
            logger.warning("witness: unreadable payload on %s: %s", message.topic, exc.reason)
