"""Camera and edge health from their retained state topics: a history of every report and
one latest row per device (``camera_status``, ``edge_status``) for the console.

The latest row follows arrival order, not ``reported_at``: an edge's last will is composed
when it connects, so the broker's "offline" carries an older time than the birth it
replaces. Every ingest process receives every state (they are not load-shared), so each
sees a topic's messages in the broker's order; a report seen twice is stored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocol import CameraState, EdgeState

from ._pool import Connection


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


async def write_camera_states(conn: Connection, states: Sequence[CameraState]) -> None:
    """Store ``states`` in arrival order; the last one per camera becomes its status."""
    if not states:
        return
    async with conn.transaction():
        for s in states:
            values = (
                s.camera_id,
                s.status,
                s.fps,
                _time(s.last_frame_at),
                _time(s.reported_at),
                s.dropped_frames,
                s.detail,
            )
            await conn.execute(
                """INSERT INTO camera_states (camera_id, status, fps, last_frame_at,
                       reported_at, dropped_frames, detail)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (camera_id, reported_at, status) DO NOTHING""",
                *values,
            )
            await conn.execute(
                """INSERT INTO camera_status (camera_id, status, fps, last_frame_at,
                       reported_at, dropped_frames, detail)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (camera_id) DO UPDATE SET status = EXCLUDED.status,
                       fps = EXCLUDED.fps, last_frame_at = EXCLUDED.last_frame_at,
                       reported_at = EXCLUDED.reported_at,
                       dropped_frames = EXCLUDED.dropped_frames, detail = EXCLUDED.detail""",
                *values,
            )


async def write_edge_states(conn: Connection, states: Sequence[EdgeState]) -> None:
    """Store ``states`` in arrival order; the last one per agent becomes its status."""
    if not states:
        return
    async with conn.transaction():
        for s in states:
            reported = _time(s.reported_at)
            await conn.execute(
                """INSERT INTO edge_states (agent_id, reported_at, status, version, cameras,
                       access_points)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (agent_id, reported_at, status) DO NOTHING""",
                s.agent_id,
                reported,
                s.status,
                s.version,
                list(s.cameras),
                list(s.access_points),
            )
            await conn.execute(
                """INSERT INTO edge_status (agent_id, status, reported_at) VALUES ($1, $2, $3)
                   ON CONFLICT (agent_id) DO UPDATE SET status = EXCLUDED.status,
                       reported_at = EXCLUDED.reported_at""",
                s.agent_id,
                s.status,
                reported,
            )
