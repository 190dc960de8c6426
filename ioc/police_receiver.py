"""``ioc police-receiver``: a local stand-in for a police dispatch system, for the demo.

It accepts CAP 1.2 messages POSTed by the alerts service's police channel, verifies each
Standard Webhooks signature (401 when it does not verify), processes each ``webhook-id``
once (a repeat is acknowledged, not processed again) and logs what it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from dataclasses import dataclass, field

from standardwebhooks import Webhook, WebhookVerificationError

logger = logging.getLogger(__name__)

_CAP_FIELD = re.compile(rb"<(identifier|msgType|event)>([^<]{0,200})</\1>")


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 request: (path, lower-cased headers, body of Content-Length bytes, at
    most 1 MB)."""
    request_line = (await reader.readline()).decode("latin-1")
    headers: dict[str, str] = {}
    while (line := (await reader.readline()).decode("latin-1").strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = min(int(headers.get("content-length", "0") or 0), 1_000_000)
    body = await reader.readexactly(length)
    parts = request_line.split(" ")
    return parts[1] if len(parts) > 1 else "/", headers, body


@dataclass
class ReceiverStats:
    received: int = 0
    processed: int = 0
    repeats: int = 0
    bad_signatures: int = 0


@dataclass
class PoliceReceiver:
    """An HTTP/1.1 server on asyncio streams: enough HTTP for one POST per connection."""

    secret: str
    stats: ReceiverStats = field(default_factory=ReceiverStats)
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._verifier = Webhook(self.secret)

    def _verdict(self, path: str, headers: dict[str, str], body: bytes) -> str:
        self.stats.received += 1
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except WebhookVerificationError as exc:
            self.stats.bad_signatures += 1
            logger.warning("police: %s: signature does not verify (%s); refused", path, exc)
            return "401 Unauthorized"
        webhook_id = headers.get("webhook-id", "")
        if webhook_id in self.seen:
            self.stats.repeats += 1
            logger.info("police: %s repeated; acknowledged, not processed again", webhook_id)
            return "204 No Content"
        self.seen.add(webhook_id)
        self.stats.processed += 1
        cap = {k.decode(): v.decode(errors="replace") for k, v in _CAP_FIELD.findall(body)}
        logger.info(
            "police: verified CAP %s %s (%s) on %s, webhook-id %s, %d bytes",
            cap.get("msgType", "?"),
            cap.get("identifier", "?"),
            cap.get("event", "?"),
            path,
            webhook_id,
            len(body),
        )
        return "204 No Content"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, headers, body = await read_request(reader)
            status = self._verdict(path, headers, body)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            logger.info("police: unreadable request: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def serve(secret: str, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    receiver = PoliceReceiver(secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(receiver.handle, host, port)
    async with server:
        logger.info("police dispatch receiver on http://%s:%d", host, port)
        await stop.wait()
    logger.info(
        "police receiver stopped: %d received, %d processed, %d repeats, %d bad signatures",
        receiver.stats.received,
        receiver.stats.processed,
        receiver.stats.repeats,
        receiver.stats.bad_signatures,
    )
