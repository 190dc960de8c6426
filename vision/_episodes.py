"""Turning per-frame findings into events with a start and an end.

A finding must persist ``min_seconds`` before its episode starts (a single noisy frame
raises nothing) and be absent ``clear_seconds`` before it ends (a person passing behind a
table does not split into two intrusions). One tracker holds many keys (zones, cameras,
or (track, zone) pairs); only keys that change state reach Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocol import EventKind

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Episode:
    kind: EventKind
    key: int
    started_at: float
    ended_at: float | None
    peak: float
    frame_seq: int
    frame_captured_at: float


class EpisodeTracker:
    """Vectorised hysteresis for many keys."""

    def __init__(self, kind: EventKind, min_seconds: Floats, clear_seconds: Floats) -> None:
        self.kind = kind
        self.min_seconds = min_seconds.astype(np.float64)
        self.clear_seconds = clear_seconds.astype(np.float64)
        n = len(min_seconds)
        self.active = np.zeros(n, bool)
        self.present_since = np.full(n, np.nan)
        self.last_present = np.full(n, np.nan)
        self.absent_since = np.full(n, np.nan)
        self.started_at = np.full(n, np.nan)
        self.peak = np.zeros(n)

    def resize(self, min_seconds: Floats, clear_seconds: Floats) -> None:
        """Take more keys (existing keys keep their state)."""
        old = len(self.active)
        n = len(min_seconds)
        self.min_seconds = min_seconds.astype(np.float64)
        self.clear_seconds = clear_seconds.astype(np.float64)
        for name, fill in (
            ("active", False),
            ("present_since", np.nan),
            ("last_present", np.nan),
            ("absent_since", np.nan),
            ("started_at", np.nan),
            ("peak", 0.0),
        ):
            array = getattr(self, name)
            grown = np.full(n, fill, array.dtype)
            grown[:old] = array
            setattr(self, name, grown)

    def update(
        self,
        keys: npt.NDArray[np.intp],
        present: npt.NDArray[np.bool_],
        score: Floats,
        now: Floats,
        frame_seq: npt.NDArray[np.int64],
        *,
        seen: Floats | None = None,
    ) -> list[Episode]:
        """Feed findings for ``keys`` observed at times ``now``; return started/ended episodes.
        ``seen`` is when each finding was last actually seen (default ``now``): a tracked
        object that is unseen for a moment is still present, but an episode that ends, ends
        where it was last seen."""
        since = self.present_since[keys]
        since = np.where(present & np.isnan(since), now if seen is None else seen, since)
        since = np.where(present, since, np.nan)
        self.present_since[keys] = since
        last = now if seen is None else seen
        self.last_present[keys] = np.where(present, last, self.last_present[keys])
        gone = self.absent_since[keys]
        gone = np.where(~present & np.isnan(gone), now, gone)
        gone = np.where(present, np.nan, gone)
        self.absent_since[keys] = gone
        active = self.active[keys]
        self.peak[keys] = np.where(active, np.maximum(self.peak[keys], score), self.peak[keys])

        starting = ~active & present & (now - since >= self.min_seconds[keys])
        ending = active & ~present & (now - gone >= self.clear_seconds[keys])
        out: list[Episode] = []
        for i in np.flatnonzero(starting):
            key = int(keys[i])
            self.active[key] = True
            self.started_at[key] = since[i]
            self.peak[key] = score[i]
            out.append(
                Episode(
                    self.kind,
                    key,
                    float(since[i]),
                    None,
                    float(score[i]),
                    int(frame_seq[i]),
                    float(now[i]),
                )
            )
        for i in np.flatnonzero(ending):
            key = int(keys[i])
            out.append(
                self._end(key, float(self.last_present[key]), int(frame_seq[i]), float(now[i]))
            )
        return out

    def _end(self, key: int, at: float, seq: int, now: float) -> Episode:
        self.active[key] = False
        started = float(self.started_at[key])
        return Episode(self.kind, key, started, max(at, started), float(self.peak[key]), seq, now)

    def transfer(self, source: int, target: int) -> None:
        """Move ``source``'s state (an open episode) to ``target``; ``source`` is forgotten."""
        for name in (
            "active",
            "present_since",
            "last_present",
            "absent_since",
            "started_at",
            "peak",
        ):
            array = getattr(self, name)
            array[target] = array[source]
        self.active[source] = False
        self.present_since[source] = np.nan
        self.absent_since[source] = np.nan
        self.last_present[source] = np.nan

    def close(self, keys: npt.NDArray[np.intp], now: float) -> list[Episode]:
        """End the open episodes of ``keys`` at their last finding and forget the keys
        (a track that is gone, a file that ended, a worker stopping)."""
        out: list[Episode] = []
        for key in keys[self.active[keys]]:
            last = self.last_present[key]
            out.append(self._end(int(key), float(now if np.isnan(last) else last), 0, now))
        self.present_since[keys] = np.nan
        self.absent_since[keys] = np.nan
        self.last_present[keys] = np.nan
        return out

    def close_all(self, now: float) -> list[Episode]:
        return self.close(np.arange(len(self.active)), now)
