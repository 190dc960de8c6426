"""The latest picture of a camera, asked of its edge over MQTT, for the operators' grid.

One :class:`protocol.SnapshotClient` connection per API process, kept up with capped,
jittered backoff. Each camera's answer (and an edge's silence) is kept for a few seconds,
and concurrent asks for the same camera share one request, so a grid of every camera open
on many operators' screens asks each edge at most once per period. Without a broker
configured the endpoint answers 503 and the rest of the API is unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Annotated, Self

import aiomqtt
from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import Response

from protocol import (
    FrameHeader,
    MqttEndpoint,
    SnapshotClient,
    SnapshotError,
    Topics,
    backoff_delay,
    stop_tasks,
)

from ._bounds import IDENTIFIER
from ._deps import AUTH_RESPONSES, Live, Pool
from ._openapi import Responses

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["live"], responses=AUTH_RESPONSES)
_CACHE_LIMIT = 4096
"""Entries kept before expired ones are swept (one per camera asked for, so a province
never reaches it; the limit only guards against a registry that keeps growing)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    camera_id: str
    jpeg: bytes
    captured_at: datetime
    width: int
    height: int


class SnapshotUnavailable(Exception):
    """No picture: ``status_code`` is what the API answers (503 no broker, 504 the edge was
    silent, 502 it answered something unreadable); ``detail`` says which."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class _BrokerLost(Exception):
    """The connection a request went out on is gone."""


class _Link:
    """The one long-lived snapshot connection, reconnected with capped, jittered backoff.

    SnapshotClient does not say when its connection dies, so a loss is noticed by the next
    request over it (an MQTT error); that request waits for the next connection and asks
    again, within its own deadline."""

    def __init__(self, endpoint: MqttEndpoint, topics: Topics) -> None:
        self.endpoint = endpoint
        self.topics = topics
        self.connections = 0
        """Connections made so far; each request knows which one it went out on."""
        self._client: SnapshotClient | None = None
        self._lost = asyncio.Event()
        self._changed = asyncio.Event()
        self.stopping = False

    def _announce(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def current(self, newer_than: int, deadline: float | None) -> tuple[SnapshotClient, int]:
        """A connection made after connection number ``newer_than``, waiting for it until
        ``deadline`` (loop time; None: for ever); 503 when there is none by then."""
        loop = asyncio.get_running_loop()
        while self._client is None or self.connections <= newer_than:
            left = None if deadline is None else max(deadline - loop.time(), 0)
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                raise SnapshotUnavailable(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    "the MQTT broker is not reachable; retrying",
                ) from None
        return self._client, self.connections

    def lost(self, connection: int) -> None:
        if connection == self.connections:
            self._lost.set()

    async def run(self) -> None:
        attempt = 0
        identifier = f"console-snapshots-{secrets.token_hex(4)}"
        while not self.stopping:
            try:
                async with SnapshotClient(
                    self.endpoint, self.topics, identifier=identifier
                ) as client:
                    attempt = 0
                    self._lost = asyncio.Event()
                    self._client = client
                    self.connections += 1
                    self._announce()
                    logger.info("snapshots: connected to %s", self.endpoint.redacted())
                    await self._lost.wait()
            except aiomqtt.MqttError as exc:
                logger.warning("snapshots: broker %s: %s", self.endpoint.redacted(), exc)
            finally:
                self._client = None
                self._announce()
            attempt += 1
            delay = backoff_delay(attempt)
            logger.info("snapshots: reconnecting in %.2f seconds", delay)
            await asyncio.sleep(delay)


async def _ask(
    client: SnapshotClient, camera_id: str, *, within: float, width: int
) -> tuple[FrameHeader, bytes]:
    try:
        return await client.request(camera_id, within=within, max_width=width)
    except aiomqtt.MqttError as exc:
        raise _BrokerLost(str(exc)) from exc
    except SnapshotError as exc:
        if isinstance(exc.__cause__, aiomqtt.MqttError):
            raise _BrokerLost(str(exc)) from exc
        silent = isinstance(exc.__cause__, TimeoutError)
        raise SnapshotUnavailable(
            status.HTTP_504_GATEWAY_TIMEOUT if silent else status.HTTP_502_BAD_GATEWAY,
            f"camera {camera_id}: {exc.reason}",
        ) from exc


@dataclass(frozen=True, slots=True)
class _Entry:
    at: float
    result: Snapshot | SnapshotUnavailable


class CameraSnapshots:
    """``async with CameraSnapshots(endpoint, topics) as snapshots: await snapshots.get(id)``;
    ``endpoint`` None means no broker is configured (every ``get`` is a 503)."""

    def __init__(
        self,
        endpoint: MqttEndpoint | None,
        topics: Topics | None = None,
        *,
        timeout: float = 2.0,
        ttl: float = 5.0,
        width: int = 640,
    ) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self.width = width
        self.requests_sent = 0
        """Requests that went to an edge (the cache and sharing keep this low)."""
        self._link = None if endpoint is None else _Link(endpoint, topics or Topics())
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[Snapshot]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        if self._link is not None:
            self._tasks.append(asyncio.create_task(self._link.run(), name="console-snapshots"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._link is not None:
            self._link.stopping = True
        await stop_tasks([*self._inflight.values(), *self._tasks])

    async def wait_connected(self, count: int = 1) -> None:
        """Return once ``count`` connections to the broker have been made and one is up."""
        if self._link is None:
            raise RuntimeError("no broker is configured")
        await self._link.current(count - 1, None)

    async def get(self, camera_id: str) -> Snapshot:
        """The camera's picture, at most ``ttl`` seconds old; :class:`SnapshotUnavailable`
        when there is none to give."""
        if self._link is None:
            raise SnapshotUnavailable(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "camera snapshots need the MQTT broker, and none is configured (IOC_MQTT_URL)",
            )
        now = asyncio.get_running_loop().time()
        entry = self._cache.get(camera_id)
        if entry is not None and now - entry.at < self.ttl:
            if isinstance(entry.result, SnapshotUnavailable):
                raise entry.result
            return entry.result
        task = self._inflight.get(camera_id)
        if task is None:
            task = asyncio.create_task(
                self._fetch(self._link, camera_id), name=f"snapshot-{camera_id}"
            )
            self._inflight[camera_id] = task
            task.add_done_callback(self._finished)
        # Shielded: an operator who closes the page does not cancel the others' request.
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[Snapshot]) -> None:
        camera_id = task.get_name().removeprefix("snapshot-")
        if self._inflight.get(camera_id) is task:
            del self._inflight[camera_id]
        if not task.cancelled():
            task.exception()  # retrieved: every asker who stayed has had it already

    async def _fetch(self, link: _Link, camera_id: str) -> Snapshot:
        loop = asyncio.get_running_loop()
        # Just started or reconnecting: worth waiting as long as an edge may take.
        deadline = loop.time() + self.timeout
        client, connection = await link.current(0, deadline)
        try:
            try:
                self.requests_sent += 1
                header, jpeg = await _ask(client, camera_id, within=self.timeout, width=self.width)
            except _BrokerLost:
                # The connection died since its last use: once more on the next one.
                link.lost(connection)
                client, connection = await link.current(connection, deadline)
                self.requests_sent += 1
                within = max(deadline - loop.time(), 0.1)
                header, jpeg = await _ask(client, camera_id, within=within, width=self.width)
        except _BrokerLost as exc:
            link.lost(connection)
            raise SnapshotUnavailable(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"lost the MQTT broker: {exc}"
            ) from exc
        except SnapshotUnavailable as failure:
            if failure.status_code != status.HTTP_503_SERVICE_UNAVAILABLE:
                self._remember(camera_id, failure)  # the edge's silence, not the broker's
            raise
        snapshot = Snapshot(
            camera_id=camera_id,
            jpeg=jpeg,
            captured_at=datetime.fromtimestamp(header.captured_at, UTC),
            width=header.width,
            height=header.height,
        )
        self._remember(camera_id, snapshot)
        return snapshot

    def _remember(self, camera_id: str, result: Snapshot | SnapshotUnavailable) -> None:
        now = asyncio.get_running_loop().time()
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache = {k: e for k, e in self._cache.items() if now - e.at < self.ttl}
        self._cache[camera_id] = _Entry(now, result)


_JPEG: Responses = {
    200: {
        "description": "The camera's picture, at most a few seconds old",
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
    },
    404: {"description": "No such camera"},
    502: {"description": "The edge answered something unreadable"},
    503: {"description": "No MQTT broker configured, or it is not reachable"},
    504: {"description": "The camera's edge did not answer in time (offline?)"},
}


@router.get("/cameras/{camera_id}/snapshot.jpg", responses=_JPEG, response_class=Response)
async def camera_snapshot(
    request: Request,
    pool: Pool,
    who: Live,
    camera_id: Annotated[str, Path(pattern=IDENTIFIER)],
) -> Response:
    """The latest picture of a camera, from its edge (shared and cached a few seconds)."""
    async with pool.acquire() as conn:
        known = await conn.fetchval("SELECT true FROM cameras WHERE id = $1", camera_id)
    if not known:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id} does not exist")
    snapshots: CameraSnapshots = request.app.state.snapshots
    try:
        snapshot = await snapshots.get(camera_id)
    except SnapshotUnavailable as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc
    return Response(
        snapshot.jpeg,
        media_type="image/jpeg",
        headers={
            "Cache-Control": f"private, max-age={int(snapshots.ttl)}",
            "Last-Modified": _http_date(snapshot.captured_at),
            "X-Captured-At": snapshot.captured_at.isoformat().replace("+00:00", "Z"),
        },
    )


def _http_date(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
