"""A minimal websocket client for benchmarks: the handshake, masked text frames out, frames
in (RFC 6455). Five hundred clients of a full client library cost the measuring process more
than the server's whole fan-out; this one keeps a benchmark about the server."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable

OnMessage = Callable[[bytes, float], None]
"""Called with each text or binary message and the wall time its bytes arrived."""


class LeanClient(asyncio.Protocol):
    """One connection; ``upgraded`` resolves after the handshake, ``closed`` at the end."""

    def __init__(self, host: str, path: str, on_message: OnMessage) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.on_message = on_message
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # TCP
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, text: str) -> None:
        payload = text.encode()
        if len(payload) > 125:
            raise ValueError("the bench sends only short control messages")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def data_received(self, data: bytes) -> None:
        at = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self.upgraded.set_result(None)
        while len(buffer) >= 2:
            opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = int.from_bytes(buffer[2:4]), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = int.from_bytes(buffer[2:10]), 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            if opcode in (1, 2):
                self.on_message(payload, at)
            elif opcode == 8:
                self.transport.close()
