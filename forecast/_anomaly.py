"""Anomaly events: the observed value left its forecast's 95% band for a configurable
number of hours. They go out as ordinary vision-protocol events (``traffic_anomaly`` for a
line, road or district, ``visitor_anomaly`` for a site), so the alerts engine gives them
the same lifecycle, grouping and map as every other alert."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from protocol import EventKind, VisionEvent
from store.forecasts import BandPoint, SeriesKey, SeriesKind


@dataclass(frozen=True)
class AnomalySettings:
    """How long reality must stay outside (or back inside) the band."""

    open_after_hours: int = 2
    close_after_hours: int = 1

    def __post_init__(self) -> None:
        for name in ("open_after_hours", "close_after_hours"):
            if not 1 <= getattr(self, name) <= 48:
                raise ValueError(f"{name} must be 1..48 hours, not {getattr(self, name)}")


@dataclass
class _Track:
    outside: int = 0
    inside: int = 0
    event_id: str | None = None
    started_at: float = 0.0


def _source(key: SeriesKey) -> tuple[str, str | None]:
    """(the event's source id, its line id): a line's camera carries the district."""
    if key.kind is SeriesKind.LINE and "/" in key.id:
        camera, line = key.id.split("/", 1)
        return camera, line
    slug = re.sub(r"[^a-z0-9-]+", "-", key.id.lower()).strip("-")[:63] or "unknown"
    return slug, None


def describe(observed: float, band: BandPoint) -> str:
    return (
        f"expected {band.value:.0f} (95%: {band.low95:.0f}-{band.high95:.0f}),"
        f" observed {observed:.0f}"
    )


@dataclass
class AnomalyWatch:
    """Per series: counts hours outside the 95% band, opens after ``open_after_hours``,
    ends after ``close_after_hours`` back inside. One call per series and hour."""

    settings: AnomalySettings = field(default_factory=AnomalySettings)
    _tracks: dict[SeriesKey, _Track] = field(default_factory=dict)

    def observe(
        self, key: SeriesKey, at: datetime, observed: float, band: BandPoint
    ) -> VisionEvent | None:
        track = self._tracks.setdefault(key, _Track())
        outside = observed < band.low95 or observed > band.high95
        track.outside = track.outside + 1 if outside else 0
        track.inside = 0 if outside else track.inside + 1
        kind = (
            EventKind.VISITOR_ANOMALY
            if key.kind is SeriesKind.SITE
            else (EventKind.TRAFFIC_ANOMALY)
        )
        source, line = _source(key)
        when = at.timestamp()
        phase: Literal["start", "update", "end"]
        if track.event_id is None and track.outside >= self.settings.open_after_hours:
            track.event_id = f"forecast:{key.kind.value}:{key.id}:{int(when)}"[:128]
            track.started_at = when
            phase = "start"
        elif track.event_id is not None and outside:
            phase = "update"
        elif track.event_id is not None and track.inside >= self.settings.close_after_hours:
            phase = "end"
        else:
            return None
        event = VisionEvent(
            event_id=track.event_id,
            kind=kind,
            camera_id=source,
            phase=phase,
            started_at=track.started_at,
            ended_at=when if phase == "end" else None,
            line_id=line,
            score=observed / band.value if band.value > 0 else 0.0,
            detail=describe(observed, band),
        )
        if phase == "end":
            track.event_id = None
        return event
