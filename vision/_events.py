"""Vision events built from episodes, with ids that are stable across restarts."""

from __future__ import annotations

import hashlib

from protocol import VisionEvent

from ._episodes import Episode


def event_id(camera_id: str, *parts: str) -> str:
    """Stable id of an event; long ids are shortened to a digest (the payload allows 128)."""
    text = ":".join((camera_id, *parts))
    if len(text) <= 128:
        return text
    return f"{camera_id}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def zone_event(
    episode: Episode,
    ident: str,
    camera_id: str,
    zone_id: str | None,
    detail: str | None = None,
) -> VisionEvent:
    """The start (open episode) or end of ``episode`` as a :class:`VisionEvent`."""
    return VisionEvent(
        event_id=ident,
        kind=episode.kind,
        camera_id=camera_id,
        phase="start" if episode.ended_at is None else "end",
        started_at=episode.started_at,
        ended_at=episode.ended_at,
        zone_id=zone_id,
        score=round(episode.peak, 4),
        frame_seq=episode.frame_seq,
        frame_captured_at=episode.frame_captured_at,
        detail=detail,
    )
