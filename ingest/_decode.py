"""From an MQTT message to a typed payload, or to a dead letter naming what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

import aiomqtt

from protocol import (
    CAMERA_STATE,
    DEAD_LETTER,
    EDGE_STATE,
    TELEMETRY,
    TRAFFIC,
    CameraState,
    EdgeState,
    PayloadError,
    Stream,
    TelemetryBatch,
    TimeWindow,
    TopicError,
    Topics,
    TrafficMetrics,
)
from store import DeadLetter

CONSUMER = "ingest"
Payload = TelemetryBatch | TrafficMetrics | CameraState | EdgeState


@dataclass(frozen=True, slots=True)
class Decoded:
    topic: str
    payload: Payload | None
    dead: DeadLetter | None

    @property
    def weight(self) -> int:
        """Rows this message will write, for sizing batches."""
        if isinstance(self.payload, TelemetryBatch):
            return len(self.payload.samples)
        if isinstance(self.payload, TrafficMetrics):
            return 1 + len(self.payload.line_counts) + len(self.payload.zone_occupancy)
        return 1


def _source_of(payload: Payload) -> str:
    if isinstance(payload, TelemetryBatch):
        return payload.ap_id
    if isinstance(payload, EdgeState):
        return payload.agent_id
    return payload.camera_id


def decode_message(
    topics: Topics, message: aiomqtt.Message, window: TimeWindow, now: float | None = None
) -> Decoded:
    """The typed payload, or a dead letter: unreadable, from another source than its topic
    names, or carrying an edge time outside ``window`` around ``now``."""
    topic = message.topic.value
    raw = message.payload if isinstance(message.payload, bytes) else b""
    try:
        parsed = topics.parse(topic)
        payload: Payload
        match parsed.stream:
            case Stream.DEAD_LETTERS:
                letter = DEAD_LETTER.decode(raw)
                dead = DeadLetter(letter.consumer, letter.topic, letter.reason, letter.payload)
                return Decoded(topic, None, dead)
            case Stream.TELEMETRY:
                payload = TELEMETRY.decode(raw)
            case Stream.TRAFFIC:
                payload = TRAFFIC.decode(raw)
            case Stream.CAMERA_STATE:
                payload = CAMERA_STATE.decode(raw)
            case Stream.EDGE_STATE:
                payload = EDGE_STATE.decode(raw)
            case _:
                raise PayloadError(f"ingest does not consume {parsed.stream} messages")
        if _source_of(payload) != parsed.source_id:
            raise PayloadError(
                f"{type(payload).__name__} of {_source_of(payload)!r} does not match the "
                f"topic {topic!r}"
            )
        window.check(payload, now)
    except (PayloadError, TopicError) as exc:
        reason = exc.reason if isinstance(exc, PayloadError) else str(exc)
        return Decoded(topic, None, DeadLetter(CONSUMER, topic, reason, raw))
    return Decoded(topic, payload, None)
