"""Turning per-frame zone findings into events with a start and an end.

A finding must persist ``min_seconds`` before its episode starts (a single noisy frame
raises nothing) and be absent ``clear_seconds`` before it ends (a person passing behind a
table does not split into two intrusions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocol import EventKind


@dataclass(frozen=True, slots=True)
class Episode:
    kind: EventKind
    zone_index: int
    started_at: float
    ended_at: float | None
    peak: float
    frame_seq: int
    frame_captured_at: float


class EpisodeTracker:
    """Vectorised hysteresis for many zones; Python runs only for zones that change state."""

    def __init__(
        self,
        kind: EventKind,
        min_seconds: npt.NDArray[np.float64],
        clear_seconds: npt.NDArray[np.float64],
    ) -> None:
        n = len(min_seconds)
        self.kind = kind
        self.min_seconds = min_seconds
        self.clear_seconds = clear_seconds
        self.active = np.zeros(n, bool)
        self.present_since = np.full(n, np.nan)
        self.absent_since = np.full(n, np.nan)
        self.started_at = np.full(n, np.nan)
        self.peak = np.zeros(n)

    def update(
        self,
        zones: npt.NDArray[np.intp],
        present: npt.NDArray[np.bool_],
        score: npt.NDArray[np.float64],
        now: npt.NDArray[np.float64],
        frame_seq: npt.NDArray[np.int64],
    ) -> list[Episode]:
        """Feed findings for ``zones`` observed at times ``now``; return started/ended episodes."""
        since = self.present_since[zones]
        since = np.where(present & np.isnan(since), now, since)
        since = np.where(present, since, np.nan)
        self.present_since[zones] = since
        gone = self.absent_since[zones]
        gone = np.where(~present & np.isnan(gone), now, gone)
        gone = np.where(present, np.nan, gone)
        self.absent_since[zones] = gone
        active = self.active[zones]
        self.peak[zones] = np.where(active, np.maximum(self.peak[zones], score), self.peak[zones])

        starting = ~active & present & (now - since >= self.min_seconds[zones])
        ending = active & ~present & (now - gone >= self.clear_seconds[zones])
        out: list[Episode] = []
        for i in np.flatnonzero(starting):
            z = int(zones[i])
            self.active[z] = True
            self.started_at[z] = since[i]
            self.peak[z] = score[i]
            out.append(
                Episode(
                    self.kind,
                    z,
                    float(since[i]),
                    None,
                    float(score[i]),
                    int(frame_seq[i]),
                    float(now[i]),
                )
            )
        for i in np.flatnonzero(ending):
            z = int(zones[i])
            self.active[z] = False
            out.append(
                Episode(
                    self.kind,
                    z,
                    float(self.started_at[z]),
                    float(gone[i]),
                    float(self.peak[z]),
                    int(frame_seq[i]),
                    float(now[i]),
                )
            )
        return out

    def close_all(self, now: float) -> list[Episode]:
        """End every open episode (end of a replayed file, or a worker stopping)."""
        out = [
            Episode(self.kind, int(z), float(self.started_at[z]), now, float(self.peak[z]), 0, now)
            for z in np.flatnonzero(self.active)
        ]
        self.active[:] = False
        return out
