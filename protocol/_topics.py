"""The MQTT topic tree (DESIGN.md, "MQTT topics"); one place builds and parses every topic."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PREFIX = "ioc/v1"
IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Stream(StrEnum):
    """The kinds of message the tree carries; the value is the topic segment."""

    FRAMES = "frames"
    CAMERA_STATE = "camera_state"
    EDGE_STATE = "edge_state"
    EDGE_STORED = "edge_stored"
    TELEMETRY = "telemetry"
    EVENTS = "events"
    TRAFFIC = "traffic"
    ALERTS = "alerts"
    DEAD_LETTERS = "dead_letters"
    SNAPSHOT_REQUEST = "snapshot_request"
    SNAPSHOT = "snapshot"
    SERVICE_STATUS = "service_status"


class TopicError(ValueError):
    """A topic that is not part of our tree, or an identifier that cannot be a topic segment."""


def check_identifier(value: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise TopicError(f"{what} {value!r} must match {IDENTIFIER.pattern}")
    return value


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    stream: Stream
    source_id: str
    """Camera, AP or agent id; for alerts the district."""
    extra: str | None = None
    """For alerts, the severity."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses topics under a configurable prefix (default ``ioc/v1``)."""

    prefix: str = DEFAULT_PREFIX

    def frames(self, camera_id: str) -> str:
        return f"{self.prefix}/cameras/{check_identifier(camera_id, 'camera id')}/frames"

    def camera_state(self, camera_id: str) -> str:
        return f"{self.prefix}/cameras/{check_identifier(camera_id, 'camera id')}/state"

    def edge_state(self, agent_id: str) -> str:
        return f"{self.prefix}/edges/{check_identifier(agent_id, 'agent id')}/state"

    def edge_stored(self, agent_id: str) -> str:
        """Receipts of the edge's telemetry batches, published by ingest once committed."""
        return f"{self.prefix}/edges/{check_identifier(agent_id, 'agent id')}/stored"

    def telemetry(self, ap_id: str) -> str:
        return f"{self.prefix}/wifi/{check_identifier(ap_id, 'access point id')}/telemetry"

    def events(self, camera_id: str) -> str:
        return f"{self.prefix}/events/{check_identifier(camera_id, 'camera id')}"

    def traffic(self, camera_id: str) -> str:
        return f"{self.prefix}/traffic/{check_identifier(camera_id, 'camera id')}"

    def alerts(self, district: str, severity: str) -> str:
        return f"{self.prefix}/alerts/{check_identifier(district, 'district')}/{severity}"

    def snapshot_request(self, camera_id: str) -> str:
        """The centre asks the edge for a full-resolution evidence snapshot (JSON request)."""
        return f"{self.prefix}/cameras/{check_identifier(camera_id, 'camera id')}/snapshot/request"

    def snapshot(self, camera_id: str, request_id: str) -> str:
        """The edge's answer: a binary frame (same layout as frames) at source resolution."""
        camera = check_identifier(camera_id, "camera id")
        return (
            f"{self.prefix}/cameras/{camera}/snapshot/{check_identifier(request_id, 'request id')}"
        )

    def service_status(self, instance: str) -> str:
        """Counters a running service publishes about itself (retained, for status boards)."""
        return f"{self.prefix}/services/{check_identifier(instance, 'service instance')}/status"

    def all_service_status(self) -> str:
        return f"{self.prefix}/services/+/status"

    def dead_letters(self, consumer: str) -> str:
        """Payloads a consumer without database access could not read, for ingest to keep."""
        return f"{self.prefix}/dead_letters/{check_identifier(consumer, 'consumer')}"

    # Subscription filters
    def all_frames(self) -> str:
        return f"{self.prefix}/cameras/+/frames"

    def all_camera_states(self) -> str:
        return f"{self.prefix}/cameras/+/state"

    def all_edge_states(self) -> str:
        return f"{self.prefix}/edges/+/state"

    def all_telemetry(self) -> str:
        return f"{self.prefix}/wifi/+/telemetry"

    def all_events(self) -> str:
        return f"{self.prefix}/events/+"

    def all_traffic(self) -> str:
        return f"{self.prefix}/traffic/+"

    def all_alerts(self) -> str:
        return f"{self.prefix}/alerts/+/+"

    def all_dead_letters(self) -> str:
        return f"{self.prefix}/dead_letters/+"

    def parse(self, topic: str) -> ParsedTopic:
        """Name the stream and source of a concrete topic, or raise :class:`TopicError`."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is outside the prefix {self.prefix!r}")
        parts = topic[len(head) :].split("/")
        for layout, stream in _LAYOUTS:
            if len(layout) == len(parts) and all(
                want in ("{source}", "{extra}") or want == got
                for want, got in zip(layout, parts, strict=True)
            ):
                found = dict(zip(layout, parts, strict=True))
                source = check_identifier(found["{source}"], "topic segment")
                extra = found.get("{extra}")
                if extra is not None and stream is not Stream.ALERTS:
                    check_identifier(extra, "topic segment")
                return ParsedTopic(stream, source, extra)
        raise TopicError(f"topic {topic!r} is not part of the {self.prefix} tree")


# Topic layouts under the prefix, most specific first ("snapshot/request" before the answer).
_LAYOUTS: list[tuple[tuple[str, ...], Stream]] = [
    (("cameras", "{source}", "frames"), Stream.FRAMES),
    (("cameras", "{source}", "state"), Stream.CAMERA_STATE),
    (("cameras", "{source}", "snapshot", "request"), Stream.SNAPSHOT_REQUEST),
    (("cameras", "{source}", "snapshot", "{extra}"), Stream.SNAPSHOT),
    (("edges", "{source}", "state"), Stream.EDGE_STATE),
    (("edges", "{source}", "stored"), Stream.EDGE_STORED),
    (("wifi", "{source}", "telemetry"), Stream.TELEMETRY),
    (("events", "{source}"), Stream.EVENTS),
    (("traffic", "{source}"), Stream.TRAFFIC),
    (("alerts", "{source}", "{extra}"), Stream.ALERTS),
    (("services", "{source}", "status"), Stream.SERVICE_STATUS),
    (("dead_letters", "{source}"), Stream.DEAD_LETTERS),
]


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: members of ``group`` split the messages between them."""
    return f"$share/{group}/{topic_filter}"
