"""A police dispatch receiver for the end-to-end benchmark and the soak: a real HTTP server
on 127.0.0.1 that verifies each Standard Webhooks signature, processes each ``webhook-id``
once (a repeat is a retry: answered 204 again, counted, not processed), and notes which CAP
message each id carried, so a run can reconcile what was staged with what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from standardwebhooks import Webhook, WebhookVerificationError

_FIELDS = {
    name: re.compile(rf"<{name}>([^<]+)</{name}>".encode())
    for name in ("identifier", "msgType", "incidents")
}


@dataclass(frozen=True, slots=True)
class CapReceipt:
    webhook_id: str
    identifier: str
    msg_type: str
    incident: str
    received_at: float


@dataclass
class PoliceTally:
    processed: dict[str, CapReceipt] = field(default_factory=dict)
    """webhook-id -> what it carried, when first processed."""
    redeliveries: int = 0
    """Requests repeating an id already processed (retries after a lost answer)."""
    bad_signatures: int = 0
    first_alert_at: dict[str, float] = field(default_factory=dict)
    """Incident (alert id) -> when its first CAP ``Alert`` arrived."""

    def duplicate_messages(self) -> int:
        """CAP messages processed under more than one webhook id (acted on twice)."""
        identifiers = [r.identifier for r in self.processed.values()]
        return len(identifiers) - len(set(identifiers))


class PoliceReceiver:
    """``async with PoliceReceiver(secret) as police``; ``police.url`` takes the POSTs."""

    def __init__(self, secret: str) -> None:
        self.tally = PoliceTally()
        self._verifier = Webhook(secret)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cap"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode("latin-1").strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self._take(request_line, headers, body)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the sender gave up or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _take(self, request_line: bytes, headers: dict[str, str], body: bytes) -> str:
        tally = self.tally
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            tally.bad_signatures += 1
            return "401 Unauthorized"
        webhook_id = headers["webhook-id"]
        if webhook_id in tally.processed:
            tally.redeliveries += 1
            return "204 No Content"
        found = {name: pattern.search(body) for name, pattern in _FIELDS.items()}
        value = {name: m.group(1).decode() if m else "" for name, m in found.items()}
        receipt = CapReceipt(
            webhook_id, value["identifier"], value["msgType"], value["incidents"], time.time()
        )
        tally.processed[webhook_id] = receipt
        if receipt.msg_type == "Alert":
            tally.first_alert_at.setdefault(receipt.incident, receipt.received_at)
        return "204 No Content"
