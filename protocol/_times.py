"""The one check every consumer applies to a time that comes from an edge.

An edge's clock (or a hostile edge) can send anything a JSON number holds: milliseconds sent
as seconds (``1e12``, the year 33658) overflow ``datetime`` deep inside a consumer, and a
time far in the past or the future puts rows where no query or retention expects them. A
time outside the window around the receiver's clock refuses the whole message, which goes
to the dead letters with the field named.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ._frames import FrameHeader
from ._messages import (
    CameraState,
    EdgeState,
    PayloadError,
    TelemetryBatch,
    TrafficMetrics,
    VisionEvent,
)

EdgeTimed = TelemetryBatch | VisionEvent | TrafficMetrics | CameraState | EdgeState | FrameHeader


class TimeOutOfWindow(PayloadError):
    """A time from an edge outside the receiver's window; ``field`` and ``value`` say which."""

    def __init__(self, field: str, value: float, earliest: float, latest: float) -> None:
        super().__init__(
            f"{field} = {value!r} is outside the accepted window "
            f"[{earliest:.0f}, {latest:.0f}] around the receiver's clock "
            "(seconds since the epoch, not milliseconds)"
        )
        self.field = field
        self.value = value


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """How far before and after the receiver's clock an edge's time may lie, in seconds."""

    past: float = 86_400.0
    """A day: an edge's spool replays an outage of up to a day; older rows are dead letters."""
    future: float = 300.0
    """Five minutes of clock skew."""

    def __post_init__(self) -> None:
        if not (self.past >= 0 and self.future >= 0):
            raise ValueError("a time window's past and future must not be negative")

    def check(self, message: EdgeTimed, now: float | None = None) -> None:
        """Raise :class:`TimeOutOfWindow` for the first edge time outside the window."""
        now = time.time() if now is None else now
        earliest, latest = now - self.past, now + self.future
        for name, value in edge_times(message):
            if not (earliest <= value <= latest) or not math.isfinite(value):
                raise TimeOutOfWindow(name, value, earliest, latest)


UNBOUNDED = TimeWindow(past=math.inf, future=math.inf)
"""For replays of recorded data and for tests with fixed clocks."""


def edge_times(message: EdgeTimed) -> Iterator[tuple[str, float]]:
    """Every time an edge set in ``message``, with its path."""
    match message:
        case TelemetryBatch():
            for i, sample in enumerate(message.samples):
                yield f"samples[{i}].ts", sample.ts
        case VisionEvent():
            yield "started_at", message.started_at
            if message.ended_at is not None:
                yield "ended_at", message.ended_at
            if message.frame_captured_at:
                yield "frame_captured_at", message.frame_captured_at
        case TrafficMetrics():
            yield "interval_start", message.interval_start
            yield "interval_end", message.interval_end
        case CameraState():
            yield "reported_at", message.reported_at
            if message.last_frame_at is not None:
                yield "last_frame_at", message.last_frame_at
        case EdgeState():
            yield "reported_at", message.reported_at
            for i, collector in enumerate(message.collectors):
                if collector.last_success_at is not None:
                    yield f"collectors[{i}].last_success_at", collector.last_success_at
        case FrameHeader():
            yield "captured_at", message.captured_at
