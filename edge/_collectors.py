"""Wi-Fi collectors: where an edge gets its access points' samples.

Every collector answers one call, :meth:`WifiCollector.collect`, with a sample per AP it could
read, or raises :class:`CollectorError` naming the source and what went wrong. Client MAC
addresses are hashed here, with a salt that changes every local day: they never leave this
module.

The access-point controller's HTTP JSON API (``GET url``, optional bearer token) must answer::

    {"access_points": [
        {"id": "ap-vinh-trang-01", "up": true, "rx_bytes": 123456, "tx_bytes": 654321,
         "channel_util": 0.31, "clients": ["a4:5e:60:12:34:56", "..."]}
    ]}

``rx_bytes``/``tx_bytes`` are the AP's counters, ``channel_util`` a fraction (0..1),
``clients`` the MAC addresses associated now. Other fields are ignored; an ``id`` may be
mapped to ours with ``id_map``; APs that belong to other agents are skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo

import httpx
import msgspec

from protocol import WifiSample, redact_url

from ._wifi import VisitorHasher, WifiFleet

_MAC = r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"


class CollectorError(RuntimeError):
    """A poll that gave nothing usable; the message names the source."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ApReading:
    ap_id: str
    sample: WifiSample


class WifiCollector(Protocol):
    """A source of Wi-Fi samples for some access points."""

    @property
    def name(self) -> str:
        """Names the source in logs and in the edge's state (never with a password)."""
        ...

    @property
    def access_points(self) -> Sequence[str]: ...

    async def collect(self, now: float) -> list[ApReading]:
        """Samples for the APs that could be read; :class:`CollectorError` if none could."""
        ...

    async def aclose(self) -> None:
        """Release connections; the collector is not used afterwards."""
        ...


class NewVisitors:
    """Per AP, the hashes first seen this local day: each phone counts once a day per AP."""

    def __init__(self, secret: bytes, timezone: str) -> None:
        self._hasher = VisitorHasher(secret)
        self._tz = ZoneInfo(timezone)
        self._day: date | None = None
        self._seen: dict[str, set[str]] = {}

    def new(self, ap_id: str, macs: Sequence[str], now: float) -> list[str]:
        day = datetime.fromtimestamp(now, self._tz).date()
        if day != self._day:
            self._day, self._seen = day, {}
        seen = self._seen.setdefault(ap_id, set())
        fresh = []
        for mac in macs:
            digest = self._hasher.hash(mac.lower().replace("-", ":"), day)
            if digest not in seen:
                seen.add(digest)
                fresh.append(digest)
        return fresh


class ControllerAp(msgspec.Struct, frozen=True):
    id: str
    up: bool
    rx_bytes: Annotated[int, msgspec.Meta(ge=0)]
    tx_bytes: Annotated[int, msgspec.Meta(ge=0)]
    channel_util: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    clients: list[Annotated[str, msgspec.Meta(pattern=_MAC)]] = []


class ControllerReport(msgspec.Struct, frozen=True):
    access_points: list[ControllerAp]


_REPORT = msgspec.json.Decoder(ControllerReport)
MAX_REPORT_BYTES = 16 * 1024 * 1024
"""Largest controller answer read (a few hundred bytes per AP: room for tens of thousands);
a larger or never-ending one is a collector error, not an edge out of memory."""


class ControllerCollector:
    """Polls an access-point controller's HTTP JSON API (layout in the module docstring)."""

    def __init__(
        self,
        url: str,
        access_points: Sequence[str],
        visitors: NewVisitors,
        *,
        token: str | None = None,
        id_map: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        verify: str | bool = True,
        max_bytes: int = MAX_REPORT_BYTES,
    ) -> None:
        self.url = url
        self.timeout = timeout
        """Seconds the whole exchange may take (a server dripping bytes is cut off too)."""
        self.max_bytes = max_bytes
        self._name = f"controller {redact_url(url)}"
        self._ours = frozenset(access_points)
        self._visitors = visitors
        self._id_map = dict(id_map or {})
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, verify=verify)

    @property
    def name(self) -> str:
        return self._name

    @property
    def access_points(self) -> Sequence[str]:
        return sorted(self._ours)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def collect(self, now: float) -> list[ApReading]:
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._read()
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise CollectorError(self.name, f"no answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise CollectorError(self.name, f"request failed: {exc}") from exc
        try:
            report = _REPORT.decode(body)
        except msgspec.ValidationError as exc:
            raise CollectorError(self.name, f"unexpected JSON: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise CollectorError(self.name, f"answer is not JSON: {exc}") from exc
        readings = []
        for ap in report.access_points:
            ap_id = self._id_map.get(ap.id, ap.id)
            if ap_id not in self._ours:
                continue  # another agent's AP on a shared controller
            sample = WifiSample(
                ts=now,
                clients=len(ap.clients),
                rx_bytes=ap.rx_bytes,
                tx_bytes=ap.tx_bytes,
                channel_util=ap.channel_util,
                up=ap.up,
                visitors=self._visitors.new(ap_id, ap.clients, now),
            )
            readings.append(ApReading(ap_id, sample))
        return readings

    async def _read(self) -> bytes:
        """The answer's body, read up to ``max_bytes``."""
        async with self._http.stream("GET", self.url) as response:
            if response.status_code != 200:
                raise CollectorError(self.name, f"answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise CollectorError(self.name, f"answer over {self.max_bytes} bytes")
            return bytes(body)


class SimulatedCollector:
    """Reads a simulated fleet (:class:`WifiFleet`) as a controller would be read."""

    def __init__(self, fleet: WifiFleet, *, period: float) -> None:
        self.fleet = fleet
        self.period = period
        self._last: float | None = None

    @property
    def name(self) -> str:
        return "simulated fleet"

    @property
    def access_points(self) -> Sequence[str]:
        return [ap.id for ap in self.fleet.access_points]

    async def aclose(self) -> None:
        return None

    async def collect(self, now: float) -> list[ApReading]:
        span = self.period if self._last is None else max(now - self._last, 1e-3)
        self._last = now
        self.fleet.sample(now, span)
        return [
            ApReading(ap_id, sample)
            for ap_id, samples in self.fleet.take().items()
            for sample in samples
        ]
