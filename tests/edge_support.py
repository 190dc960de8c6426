"""Helpers for the edge tests: a real access-point controller over HTTP, agent plans."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt

from edge import AgentPlan, parse_agent_config, resolve
from protocol import MqttEndpoint, Topics

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Controller:
    """What the fake controller answers: ``mode`` is ok | garbage | schema | error | hang |
    endless (a 200 whose chunked body never ends; ``endless_sent`` counts its bytes)."""

    access_points: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "ok"
    requests: int = 0
    authorization: list[str | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    endless_sent: int = 0

    def body(self) -> tuple[int, bytes]:
        if self.mode == "garbage":
            return 200, b"<html>\x00\xffnot json"
        if self.mode == "schema":
            return 200, json.dumps({"access_points": [{"id": "x", "up": "maybe"}]}).encode()
        if self.mode == "error":
            return 500, b"internal error"
        return 200, json.dumps({"access_points": self.access_points}).encode()


@contextmanager
def controller_server() -> Iterator[Controller]:
    """A real HTTP server on a free port, answering as its :class:`Controller` says."""
    controller = Controller()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            controller.requests += 1
            controller.authorization.append(self.headers.get("Authorization"))
            if controller.mode == "hang":
                controller.release.wait(30)
                return
            if controller.mode == "endless":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
                with contextlib.suppress(OSError):  # until the client hangs up
                    while not controller.release.is_set():
                        self.wfile.write(chunk)
                        controller.endless_sent += 65536
                return
            status, body = controller.body()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    controller.url = f"http://127.0.0.1:{server.server_address[1]}/api/aps"
    try:
        yield controller
    finally:
        controller.release.set()
        server.shutdown()
        server.server_close()


def ap_entry(ap_id: str, macs: list[str], *, up: bool = True) -> dict[str, Any]:
    return {
        "id": ap_id,
        "up": up,
        "rx_bytes": 1000,
        "tx_bytes": 2000,
        "channel_util": 0.25,
        "clients": macs,
        "vendor_field": "ignored",
    }


def agent_plan(
    tmp_path: Path,
    endpoint: MqttEndpoint,
    topics: Topics,
    raw: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> AgentPlan:
    """Resolve an agent config (written as a dict) against a broker, in ``tmp_path``."""
    config = {
        "agent_id": "edge-test",
        "mqtt": {"topic_prefix": topics.prefix, "mqtt5": endpoint.mqtt5},
        "spool": {"path": str(tmp_path / "spool.sqlite")},
        "camera_options": {"media_dir": str(ROOT), "open_timeout": 2, "read_timeout": 2},
        **raw,
    }
    env = {
        "IOC_MQTT_URL": ",".join(f"mqtt://{host}:{port}" for host, port in endpoint.brokers),
        "IOC_EDGE_HASH_SECRET": "a-test-secret-of-some-length",
        **(environ or {}),
    }
    if endpoint.username:
        env.setdefault("IOC_MQTT_USERNAME", endpoint.username)
        env.setdefault("IOC_MQTT_PASSWORD", endpoint.password or "")
    return resolve(parse_agent_config(config), tmp_path, env)


@asynccontextmanager
async def running(work: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``work`` as a task for the block; cancel it and wait for it afterwards."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class MjpegStream:
    """What the MJPEG server does: serve ``frames`` in a loop; after ``stall_after`` frames
    of a connection, stop sending (the connection stays open)."""

    frames: list[bytes]
    fps: float = 25.0
    stall_after: int | None = None
    connections: int = 0
    url: str = ""
    stop: threading.Event = field(default_factory=threading.Event)


@contextmanager
def mjpeg_server(frames: list[bytes], **options: Any) -> Iterator[MjpegStream]:
    """A real HTTP camera: multipart/x-mixed-replace JPEG frames, as many IP cameras serve."""
    stream = MjpegStream(frames, **options)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _head(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()

        def do_HEAD(self) -> None:
            self._head()

        def do_GET(self) -> None:
            stream.connections += 1
            self._head()
            sent = 0
            try:
                while not stream.stop.is_set():
                    if stream.stall_after is not None and sent >= stream.stall_after:
                        stream.stop.wait(30)
                        return
                    jpeg = stream.frames[sent % len(stream.frames)]
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\n"
                        + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg
                        + b"\r\n"
                    )
                    sent += 1
                    stream.stop.wait(1 / stream.fps)  # the camera's own frame clock
            except OSError:
                return  # the reader hung up

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stream.url = f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    try:
        yield stream
    finally:
        stream.stop.set()
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Recorder:
    """A real subscriber that keeps everything it receives; tests wait on what it has."""

    def __init__(
        self, endpoint: MqttEndpoint, filters: list[str], identifier: str = "recorder"
    ) -> None:
        self.endpoint = endpoint
        self.filters = filters
        self.identifier = identifier
        self.messages: list[Received] = []
        self.changed = asyncio.Condition()
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        client = await self._stack.enter_async_context(self.endpoint.client(self.identifier))
        await client.subscribe([(f, 1) for f in self.filters])
        self._task = asyncio.create_task(self._collect(client))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _collect(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.messages.append(Received(message.topic.value, payload, message.retain))
            async with self.changed:
                self.changed.notify_all()

    def on(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.messages if m.topic == topic]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 60.0) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(predicate)
