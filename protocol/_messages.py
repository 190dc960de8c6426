"""JSON payloads of the topic tree, as msgspec structs.

Every payload carries ``"v"``, its schema version. Times are seconds since the Unix epoch,
UTC, as JSON numbers. A decoder raises :class:`PayloadError` whose message names the field
that is wrong (``Expected `int`, got `str` - at `$.samples[0].clients```).
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

import msgspec

from ._topics import IDENTIFIER
from ._vocabulary import EventKind, Severity

Identifier = Annotated[str, msgspec.Meta(pattern=IDENTIFIER.pattern)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Epoch = Annotated[float, msgspec.Meta(ge=0.0)]
VisitorHash = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16}$")]

CameraStatus = Literal["online", "offline", "degraded"]
EdgeStatus = Literal["online", "offline"]
EventPhase = Literal["start", "update", "end", "instant"]
Direction = Literal["forward", "backward"]


class PayloadError(ValueError):
    """A payload we cannot read. ``reason`` names what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WifiSample(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ts: Epoch
    clients: NonNegative
    rx_bytes: NonNegative
    tx_bytes: NonNegative
    channel_util: Fraction
    up: bool
    visitors: list[VisitorHash] = []
    """Salted, daily-rotated hashes of the client identifiers seen (never raw MACs)."""


class TelemetryBatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ap_id: Identifier
    seq: NonNegative
    """Per-AP batch sequence number; (ap_id, seq) identifies a batch for idempotent writes."""
    samples: Annotated[list[WifiSample], msgspec.Meta(min_length=1, max_length=10_000)]
    agent_id: Identifier | None = None
    v: Literal[1] = 1


class BatchRef(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """One telemetry batch by its identity, ``[ap_id, seq]`` on the wire."""

    ap_id: Identifier
    seq: NonNegative


class StoredReceipt(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Ingest's word to an edge that these batches of its telemetry are committed (stored,
    already stored, or kept as dead letters): the edge may forget them."""

    agent_id: Identifier
    batches: Annotated[list[BatchRef], msgspec.Meta(min_length=1)]
    stored_at: Epoch
    v: Literal[1] = 1


class CameraState(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    camera_id: Identifier
    status: CameraStatus
    fps: Annotated[float, msgspec.Meta(ge=0.0)]
    reported_at: Epoch
    last_frame_at: Epoch | None = None
    dropped_frames: NonNegative = 0
    detail: str | None = None
    v: Literal[1] = 1


class CollectorState(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How one Wi-Fi collector of an edge is doing (a controller that answers garbage or
    hangs shows here as ``failing`` with the reason)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    status: Literal["starting", "ok", "failing"]
    access_points: NonNegative = 0
    failures: NonNegative = 0
    """Consecutive failed polls."""
    last_success_at: Epoch | None = None
    detail: str | None = None


class EdgeState(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    agent_id: Identifier
    status: EdgeStatus
    reported_at: Epoch
    cameras: list[Identifier] = []
    access_points: list[Identifier] = []
    version: str = ""
    collectors: list[CollectorState] = []
    spooled_batches: NonNegative = 0
    """Telemetry batches waiting on the edge's disk for the broker."""
    spool_dropped_batches: NonNegative = 0
    """Batches the full spool discarded since the agent started (see its policy)."""
    v: Literal[1] = 1


class VisionEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One detector finding. Episodes (intrusion, congestion ...) send ``start``, optional
    ``update`` and ``end`` with the same ``event_id``; counts send ``instant``."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    kind: EventKind
    camera_id: Identifier
    phase: EventPhase
    started_at: Epoch
    ended_at: Epoch | None = None
    zone_id: Identifier | None = None
    line_id: Identifier | None = None
    direction: Direction | None = None
    score: float = 0.0
    """Detector-specific strength: zone occupancy, blur measure, crowd fraction ..."""
    frame_seq: NonNegative = 0
    frame_captured_at: Epoch = 0.0
    """Capture time of the frame that produced the event, for end-to-end latency."""
    detail: str | None = None
    """What exactly was found, where the kind has several causes (camera_tamper: blur,
    covered or moved)."""
    gate_id: Identifier | None = None
    """speeding: the camera's speed gate that timed the vehicle."""
    speed_kmh: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    """speeding: the measured speed (an estimate, see docs/vision.md)."""
    limit_kmh: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    """speeding: the gate's limit."""
    v: Literal[1] = 1


class LineCount(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    forward: NonNegative = 0
    backward: NonNegative = 0


class TrafficMetrics(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    camera_id: Identifier
    interval_start: Epoch
    interval_end: Epoch
    seq: NonNegative
    """Per-camera interval number; (camera_id, seq) identifies the row for idempotent writes."""
    line_counts: dict[str, LineCount] = {}
    zone_occupancy: dict[str, Fraction] = {}
    congested_zones: list[str] = []
    frames: NonNegative = 0
    speeds: NonNegative = 0
    """Vehicles timed by the camera's speed gates in the interval."""
    speed_mean_kmh: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    speed_p85_kmh: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    """Mean and 85th percentile of those speeds (None without any): the 85th percentile is
    what traffic engineers set limits by."""
    v: Literal[1] = 1


class AlertMessage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An alert change for outside subscribers (``ioc/v1/alerts/{district}/{severity}``)."""

    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    change_seq: NonNegative
    kind: EventKind
    state: Literal["open", "acknowledged", "assigned", "resolved"]
    severity: Severity
    district: Identifier
    source_id: Identifier
    title_vi: str
    title_en: str
    opened_at: Epoch
    updated_at: Epoch
    zone_id: str | None = None
    count: NonNegative = 1
    change: str | None = None
    """What changed: opened, repeated, cleared, acknowledged, assigned, resolved, escalated,
    unmuted (added in schema 1, optional)."""
    escalation_level: NonNegative = 0
    """Times the alert was raised for staying unacknowledged (optional)."""
    v: Literal[1] = 1


Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=60.0)]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class ClipOrder(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Also cut an evidence clip from ``event_at - pre`` to ``event_at + post`` and upload it
    to the centre over HTTPS (docs/edge.md, "Evidence clips")."""

    clip_id: Identifier
    alert_id: str
    event_at: Epoch
    pre: Seconds = 10.0
    post: Seconds = 10.0


class SnapshotRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Ask the edge for an evidence snapshot; it answers on ``Topics.snapshot(camera,
    request_id)`` with a binary frame (QoS 1). With ``clip`` (schema 1, optional) the edge
    also cuts and uploads a clip."""

    request_id: Identifier
    camera_id: Identifier
    requested_at: Epoch
    max_width: Annotated[int, msgspec.Meta(ge=64, le=7680)] = 1920
    clip: ClipOrder | None = None
    v: Literal[1] = 1


class ClipManifest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What an edge says about a clip it cut, when it starts the clip's upload (the body of
    ``POST /api/v1/evidence/uploads``); the centre checks the bytes against it."""

    clip_id: Identifier
    alert_id: str
    camera_id: Identifier
    agent_id: Identifier
    event_at: Epoch
    started_at: Epoch
    ended_at: Epoch
    frames: NonNegative
    size: Annotated[int, msgspec.Meta(ge=1)]
    sha256: Sha256
    cut_at: Epoch
    v: Literal[1] = 1


class ServiceStatus(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What one service process reports about itself every few seconds."""

    instance: Identifier
    service: str
    status: Literal["running", "stopped", "standby"]
    """``standby``: alive and ready to take over (a vision worker whose shard another holds)."""
    pid: NonNegative
    started_at: Epoch
    reported_at: Epoch
    cpu_percent: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    rss_mb: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    counters: dict[str, float] = {}
    v: Literal[1] = 1


class DeadLetterMessage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A payload that ``consumer`` could not read, forwarded for the store to keep."""

    consumer: Identifier
    topic: str
    reason: str
    payload: bytes
    """The payload as received (base64 in JSON)."""
    received_at: Epoch
    v: Literal[1] = 1


M = TypeVar("M", bound=msgspec.Struct)


class Codec(Generic[M]):
    """A reusable JSON encoder/decoder pair for one payload type."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._decoder = msgspec.json.Decoder(model)
        self._encoder = msgspec.json.Encoder()

    def encode(self, message: M) -> bytes:
        return self._encoder.encode(message)

    def decode(self, payload: bytes | bytearray | memoryview) -> M:
        try:
            return self._decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise PayloadError(f"invalid {self.model.__name__}: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise PayloadError(f"{self.model.__name__} is not valid JSON: {exc}") from exc


TELEMETRY = Codec(TelemetryBatch)
CAMERA_STATE = Codec(CameraState)
EDGE_STATE = Codec(EdgeState)
EVENT = Codec(VisionEvent)
TRAFFIC = Codec(TrafficMetrics)
ALERT = Codec(AlertMessage)
DEAD_LETTER = Codec(DeadLetterMessage)
SNAPSHOT_REQUEST = Codec(SnapshotRequest)
CLIP_MANIFEST = Codec(ClipManifest)
SERVICE_STATUS = Codec(ServiceStatus)
STORED_RECEIPT = Codec(StoredReceipt)
