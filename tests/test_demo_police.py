"""The demo's police dispatch receiver: verifies signatures, processes each message once."""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from ioc.police_receiver import PoliceReceiver

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
