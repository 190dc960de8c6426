"""A simulated fleet of tourism Wi-Fi access points with realistic daily patterns.

Visitors are counted through salted, daily-rotated hashes: the salt is derived from a
secret and the local date, so the same phone hashes differently tomorrow and raw MAC
addresses never leave the edge.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from protocol import AccessPoint, TelemetryBatch, WifiSample


class VisitorHasher:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._day: date | None = None
        self._salt = b""

    def hash(self, mac: str, day: date) -> str:
        if day != self._day:
            self._day = day
            self._salt = hmac.new(self._secret, day.isoformat().encode(), "sha256").digest()
        return hashlib.blake2b(mac.encode(), key=self._salt, digest_size=8).hexdigest()


def busyness(local: datetime) -> float:
    """0..1: tourist sites are quiet at night, busy late morning and evening, more so at
    weekends."""
    hour = local.hour + local.minute / 60
    day_curve = math.exp(-((hour - 10.5) ** 2) / 8) + 0.9 * math.exp(-((hour - 19) ** 2) / 6)
    weekend = 1.4 if local.weekday() >= 5 else 1.0
    return min(1.0, 0.05 + 0.6 * day_curve * weekend)


@dataclass
class _ApState:
    ap: AccessPoint
    seq: int = 0
    rx: int = 0
    tx: int = 0
    clients: int = 0
    up: bool = True
    pending: list[WifiSample] = field(default_factory=list)


class WifiFleet:
    """Produces per-AP samples every ``sample_period`` and batches them for publishing."""

    def __init__(
        self,
        access_points: list[AccessPoint],
        *,
        secret: bytes,
        timezone: str,
        first_seq: int = 0,
        seed: int = 7,
    ) -> None:
        # Sequence numbers must grow across restarts (the centre ignores repeats): callers
        # start them from a clock or from a persisted counter.
        self._aps = [_ApState(ap, seq=first_seq) for ap in access_points]
        self._hasher = VisitorHasher(secret)
        self._tz = ZoneInfo(timezone)
        self._random = random.Random(seed)
        self.down: set[str] = set()
        """AP ids scripted to be down (an incident)."""
        self.crowds: dict[str, float] = {}
        """Site or AP id -> load multiplier, scripted crowds (3.0: three times the usual
        clients, and at least half a busy day's)."""

    def sample(self, now: float, period: float) -> None:
        local = datetime.fromtimestamp(now, self._tz)
        load = busyness(local)
        rnd = self._random
        for state in self._aps:
            state.up = state.ap.id not in self.down
            surge = self.crowds.get(state.ap.id) or self.crowds.get(state.ap.site, 1.0)
            # A crowd comes on top of at least a middling day's visitors, at any hour.
            here = max(load, 0.5) if surge > 1.0 else load
            target = (
                state.ap.capacity * here * surge * (0.6 + 0.4 * rnd.random()) if state.up else 0
            )
            if state.up:
                state.clients = max(
                    0, int(state.clients + (target - state.clients) * 0.2 + rnd.gauss(0, 1))
                )
            else:
                state.clients = 0  # a down AP serves nobody
            expected = period * state.clients / 600  # ten-minute average dwell
            arrivals = int(expected) + (rnd.random() < expected - int(expected))
            visitors = [
                self._hasher.hash(f"02:{rnd.getrandbits(40):010x}", local.date())
                for _ in range(arrivals)
            ]
            state.rx += int(state.clients * 40_000 * period * rnd.random())
            state.tx += int(state.clients * 120_000 * period * rnd.random())
            state.pending.append(
                WifiSample(
                    ts=now,
                    clients=state.clients,
                    rx_bytes=state.rx,
                    tx_bytes=state.tx,
                    channel_util=min(1.0, state.clients / (state.ap.capacity * 1.5)),
                    up=state.up,
                    visitors=visitors,
                )
            )

    @property
    def access_points(self) -> list[AccessPoint]:
        return [state.ap for state in self._aps]

    def take(self) -> dict[str, list[WifiSample]]:
        """The samples gathered since the last call, per AP (APs without any are left out)."""
        out = {}
        for state in self._aps:
            if state.pending:
                out[state.ap.id] = state.pending
                state.pending = []
        return out

    def drain(self, agent_id: str) -> list[TelemetryBatch]:
        out = []
        for state in self._aps:
            if state.pending:
                state.seq += 1
                out.append(
                    TelemetryBatch(
                        ap_id=state.ap.id, seq=state.seq, samples=state.pending, agent_id=agent_id
                    )
                )
                state.pending = []
        return out
