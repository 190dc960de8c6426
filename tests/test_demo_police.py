"""The demo's police dispatch receiver: verifies signatures, processes each message once,
fetches a clip by its link and checks its digest."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from ioc.police_receiver import PoliceReceiver, cap_resources, fetch_resource

CAP = b"<alert><identifier>a-1.1</identifier><msgType>Alert</msgType><event>x</event></alert>"


async def test_the_receiver_verifies_signatures_and_processes_each_message_once() -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = PoliceReceiver(secret)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    signer = Webhook(secret)
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign("msg_1", now, CAP.decode()),
        "content-type": "application/cap+xml",
    }
    async with server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        first = await client.post("/cap", content=CAP, headers=headers)
        again = await client.post("/cap", content=CAP, headers=headers)
        forged = await client.post("/cap", content=CAP + b" ", headers=headers)
    assert (first.status_code, again.status_code, forged.status_code) == (204, 204, 401)
    stats = receiver.stats
    assert (stats.received, stats.processed, stats.repeats, stats.bad_signatures) == (3, 1, 1, 1)


async def test_a_clip_in_a_message_is_fetched_by_its_link_and_checked() -> None:
    clip = secrets.token_bytes(5000)
    served = [clip, clip[:-1] + bytes([clip[-1] ^ 1])]  # then a changed byte

    async def serve_clip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = served.pop(0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve_clip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    digest = hashlib.sha1(clip, usedforsecurity=False).hexdigest()
    resource = (
        f"<resource><resourceDesc>video clip</resourceDesc><mimeType>video/mp4</mimeType>"
        f"<size>{len(clip)}</size><uri>http://127.0.0.1:{port}/c?aud=police&amp;sig=x</uri>"
        f"<digest>{digest}</digest></resource>"
    ).encode()
    body = b"<alert><info>" + resource + b"</info><info>" + resource + b"</info></alert>"
    (found,) = cap_resources(body)  # each info repeats it: once
    assert (found.description, found.size, found.digest) == ("video clip", len(clip), digest)
    assert found.uri.endswith("?aud=police&sig=x")
    async with server, httpx.AsyncClient() as http:
        assert await fetch_resource(http, "a-1.2", found)
        assert not await fetch_resource(http, "a-1.2", found)
