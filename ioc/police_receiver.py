"""``ioc police-receiver``: a local stand-in for a police dispatch system, for the demo.

It accepts CAP 1.2 messages POSTed by the alerts service's police channel, verifies each
Standard Webhooks signature (401 when it does not verify), processes each ``webhook-id``
once (a repeat is acknowledged, not processed again) and logs what it received. A message
carrying an evidence clip (a CAP ``resource``) has its clip fetched by the signed link, as a
dispatcher would, and the bytes checked against the resource's SHA-1 ``digest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
import re
import signal
from dataclasses import dataclass, field

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

logger = logging.getLogger(__name__)

_CAP_FIELD = re.compile(rb"<(identifier|msgType|event)>([^<]{0,200})</\1>")
_RESOURCE = re.compile(rb"<resource>(.{0,4000}?)</resource>", re.DOTALL)
_RESOURCE_FIELD = re.compile(rb"<(resourceDesc|mimeType|size|uri|digest)>([^<]{0,2000})</\1>")


@dataclass(frozen=True, slots=True)
class CapResource:
    """A CAP ``resource`` as received: ``uri`` unescaped, ``digest`` CAP 1.2's SHA-1."""

    description: str
    uri: str
    digest: str
    size: int | None


def cap_resources(body: bytes) -> list[CapResource]:
    """The message's resources with a link, once each (every ``info`` repeats them)."""
    found: dict[str, CapResource] = {}
    for block in _RESOURCE.findall(body):
        fields = {k.decode(): html.unescape(v.decode()) for k, v in _RESOURCE_FIELD.findall(block)}
        uri = fields.get("uri")
        if uri and uri not in found:
            size = fields.get("size", "")
            found[uri] = CapResource(
                fields.get("resourceDesc", "?"),
                uri,
                fields.get("digest", ""),
                int(size) if size.isdigit() else None,
            )
    return list(found.values())


async def fetch_resource(http: httpx.AsyncClient, identifier: str, resource: CapResource) -> bool:
    """Fetch a resource by its link and check its digest; log what came of it."""
    try:
        answer = await http.get(resource.uri)
    except httpx.HTTPError as exc:
        logger.warning("police: %s of %s: link failed (%s)", resource.description, identifier, exc)
        return False
    if answer.status_code != 200:
        logger.warning(
            "police: %s of %s: link answered %d",
            resource.description,
            identifier,
            answer.status_code,
        )
        return False
    sha1 = hashlib.sha1(answer.content, usedforsecurity=False).hexdigest()
    matches = sha1 == resource.digest
    log = logger.info if matches else logger.warning
    log(
        "police: %s of %s fetched by its link: %d bytes, SHA-1 %s the digest",
        resource.description,
        identifier,
        len(answer.content),
        "matches" if matches else "DOES NOT MATCH",
    )
    return matches


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


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one request, and the resources of a message processed for the first
    time (fetched after answering)."""

    status: str
    identifier: str = ""
    resources: list[CapResource] = field(default_factory=list)


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

    def _verdict(self, path: str, headers: dict[str, str], body: bytes) -> Verdict:
        self.stats.received += 1
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except WebhookVerificationError as exc:
            self.stats.bad_signatures += 1
            logger.warning("police: %s: signature does not verify (%s); refused", path, exc)
            return Verdict("401 Unauthorized")
        webhook_id = headers.get("webhook-id", "")
        if webhook_id in self.seen:
            self.stats.repeats += 1
            logger.info("police: %s repeated; acknowledged, not processed again", webhook_id)
            return Verdict("204 No Content")
        self.seen.add(webhook_id)
        self.stats.processed += 1
        cap = {k.decode(): v.decode(errors="replace") for k, v in _CAP_FIELD.findall(body)}
        resources = cap_resources(body)
        logger.info(
            "police: verified CAP %s %s (%s) on %s, webhook-id %s, %d bytes%s",
            cap.get("msgType", "?"),
            cap.get("identifier", "?"),
            cap.get("event", "?"),
            path,
            webhook_id,
            len(body),
            "".join(f", with a {r.description} ({r.size} bytes)" for r in resources),
        )
        return Verdict("204 No Content", cap.get("identifier", "?"), resources)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        verdict = Verdict("")
        try:
            path, headers, body = await read_request(reader)
            verdict = self._verdict(path, headers, body)
            head = f"HTTP/1.1 {verdict.status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            writer.write(head.encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            logger.info("police: unreadable request: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        # After answering: the sender is not kept waiting while the dispatcher looks.
        if verdict.resources:
            async with httpx.AsyncClient(timeout=30.0) as http:
                for resource in verdict.resources:
                    await fetch_resource(http, verdict.identifier, resource)


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
