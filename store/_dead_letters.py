"""Payloads a consumer could not read, kept with the reason so nothing is silently lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._bulk import load
from ._pool import Connection
from ._retention import MAX_DEAD_LETTER_PAYLOAD

_COLUMNS = (("consumer", "text"), ("topic", "text"), ("reason", "text"), ("payload", "bytea"))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    consumer: str
    topic: str
    reason: str
    payload: bytes


async def record_dead_letters(conn: Connection, letters: Sequence[DeadLetter]) -> None:
    # Bounded: a 10 MB hostile payload is kept by its start, which names what it was.
    rows = [
        (d.consumer, d.topic[:512], d.reason[:2000], d.payload[:MAX_DEAD_LETTER_PAYLOAD])
        for d in letters
    ]
    await load(conn, "dead_letters", rows, use_copy=False, columns=_COLUMNS)
