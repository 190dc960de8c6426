"""Payloads a consumer could not read, kept with the reason so nothing is silently lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._pool import Connection


@dataclass(frozen=True, slots=True)
class DeadLetter:
    consumer: str
    topic: str
    reason: str
    payload: bytes


async def record_dead_letters(conn: Connection, letters: Sequence[DeadLetter]) -> None:
    if not letters:
        return
    await conn.executemany(
        "INSERT INTO dead_letters (consumer, topic, reason, payload) VALUES ($1, $2, $3, $4)",
        [(d.consumer, d.topic, d.reason[:2000], d.payload) for d in letters],
    )
