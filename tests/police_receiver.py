"""A real HTTP receiver for police webhooks, on asyncio streams, that can fail, hang, answer
garbage, say 410 Gone or Retry-After, and recover. It verifies each Standard Webhooks
signature and processes each ``webhook-id`` once, as a dispatch system should. The demo's
receiver (``ioc police-receiver``) is the well-behaved kind; requests are read as it reads them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from standardwebhooks import Webhook, WebhookVerificationError

from ioc.police_receiver import read_request

Behaviour = str
"""ok | fail | hang | garbage | gone | retry:<seconds> | endless (processed, then a 200 whose
chunked body never ends: it goes on until the client hangs up, or 64 MiB)"""

ENDLESS_CAP = 64 * 1024 * 1024


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    behaviour: Behaviour
    signature_valid: bool


@dataclass
class Receiver:
    secret: str
    scripts: dict[str, list[Behaviour]] = field(default_factory=dict)
    """Per path, the behaviours of the next requests; then ``ok``."""
    requests: list[Request] = field(default_factory=list)
    processed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Per path, webhook ids in the order they were first processed."""
    bodies: dict[str, bytes] = field(default_factory=dict)
    release_hung: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    endless_sent: list[int] = field(default_factory=list)
    """Per endless answer, the body bytes sent before the client hung up (or the cap)."""

    def __post_init__(self) -> None:
        self._verifier = Webhook(self.secret)
        self._changed = asyncio.Condition()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_until(self, predicate: Callable[[Receiver], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, headers, body = await read_request(reader)
            script = self.scripts.get(path, [])
            behaviour = script.pop(0) if script else "ok"
            try:
                self._verifier.verify(body, headers, json_parse=False)
                valid = True
            except WebhookVerificationError:
                valid = False
            request = Request(path, headers, body, behaviour, valid)
            async with self._changed:
                self.requests.append(request)
                self._changed.notify_all()
            await self._respond(writer, request)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (timeout): nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, writer: asyncio.StreamWriter, request: Request) -> None:
        behaviour, status, extra = request.behaviour, "204 No Content", ""
        if behaviour == "hang":
            await self.release_hung.wait()
            return  # close without a word
        if behaviour == "garbage":
            writer.write(b"\x00\x13 this is not HTTP at all \xff\r\n\r\n")
            await writer.drain()
            return
        if behaviour == "fail":
            status = "500 Internal Server Error"
        elif behaviour == "gone":
            status = "410 Gone"
        elif behaviour.startswith("retry:"):
            status, extra = "503 Service Unavailable", f"Retry-After: {behaviour[6:]}\r\n"
        elif not request.signature_valid:
            status = "401 Unauthorized"
        else:
            webhook_id = request.headers["webhook-id"]
            async with self._changed:
                if webhook_id not in self.bodies:  # a repeat is acknowledged, not processed
                    self.bodies[webhook_id] = request.body
                    self.processed[request.path].append(webhook_id)
                self._changed.notify_all()
            if behaviour == "endless":
                await self._endless(writer)
                return
        writer.write(
            f"HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()

    async def _endless(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        sent = 0
        try:
            while sent < ENDLESS_CAP:
                writer.write(chunk)
                await writer.drain()
                sent += 65536
        finally:
            async with self._changed:
                self.endless_sent.append(sent)
                self._changed.notify_all()


@contextlib.asynccontextmanager
async def police_receiver(secret: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(secret)
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver.release_hung.set()
        server.close()
        await server.wait_closed()
