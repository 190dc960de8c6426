"""The on-disk spool: telemetry waits here, in arrival order, until the centre has stored it.

Every telemetry batch is written to the spool before it is published. The broker's
acknowledgement (QoS 1) only marks it sent: it is removed when ingest's receipt for its
(ap_id, seq) arrives (``{prefix}/edges/{agent_id}/stored``), and sent again when no receipt
came within ``resend_after`` or the connection was lost. So neither a broker outage, nor an
agent crash, nor the death of a broker that had acknowledged but not yet delivered a batch
loses it; the centre stores a batch once per (ap_id, seq), so a repeat has no effect.

The per-AP sequence numbers live in the same sqlite file and are committed in the same
transaction as the batches that use them: they keep growing across restarts, and a number
can only be reused if the batch that carried it was never stored (so never sent).

The spool is bounded (``max_bytes`` of payload). When full it follows its policy, and says
so in the log every time it discards something:
- ``drop_oldest`` (default): the oldest batches go, so the newest picture survives a long
  outage;
- ``drop_newest``: new batches are refused, so the start of an outage survives.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sequences (
    key TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
"""
# Added with receipts; a spool file from before gets them on open (its rows have no key and
# are forgotten on the broker's acknowledgement, as they were then).
_RECEIPT_COLUMNS = {
    "key": "TEXT",
    "seq": "INTEGER",
    "sent_at": "REAL",
    "sends": "INTEGER NOT NULL DEFAULT 0",
}
_RECEIPT_INDEX = "CREATE INDEX IF NOT EXISTS spool_batch ON spool (key, seq)"
_DUE_AT = "sent_at + ? * (1 << min(max(sends - 1, 0), 4))"
"""When a sent message without a receipt is due again: resend_after, doubled per send."""


class SpoolPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """A message to keep until published; ``key``/``seq`` advance that key's sequence."""

    topic: str
    payload: bytes
    key: str
    seq: int


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    id: int
    topic: str
    payload: bytes
    sends: int = 0
    """How often it was published before (and no receipt came)."""


@dataclass
class SpoolStats:
    appended: int = 0
    removed: int = 0
    confirmed: int = 0
    """Entries removed because the centre's receipt named them."""
    dropped: int = 0
    """Entries discarded by the full-spool policy since the spool was opened."""


class Spool:
    """A bounded FIFO of MQTT messages in sqlite, with durable per-key sequence numbers.

    Synchronous and quick (one transaction per call); appends are fsynced (a power cut must
    not roll a sequence number back), removals are not (a lost removal is only a repeat)."""

    def __init__(
        self,
        path: Path | None,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        when_full: SpoolPolicy = SpoolPolicy.DROP_OLDEST,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.stats = SpoolStats()
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self._count = 0
        self._sequences: dict[str, int] = {}

    def open(self) -> None:
        """Open (and create) the file; with ``path`` None the spool lives in memory, which
        rides out broker outages but not a restart (the simulator's choice)."""
        if self.path is None:
            db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        present = {row[1] for row in db.execute("PRAGMA table_info(spool)")}
        for column, kind in _RECEIPT_COLUMNS.items():
            if column not in present:
                db.execute(f"ALTER TABLE spool ADD COLUMN {column} {kind}")
        db.execute(_RECEIPT_INDEX)
        self._count, self._bytes = db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM spool"
        ).fetchone()
        self._sequences = dict(db.execute("SELECT key, last FROM sequences").fetchall())
        self._db = db
        if self._count:
            logger.info(
                "spool %s holds %d messages (%d bytes) from before; they go first",
                self.path,
                self._count,
                self._bytes,
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"spool {self.path} is not open")
        return self._db

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def next_sequence(self, key: str, floor: int = 0) -> int:
        """The next number for ``key``; it becomes durable with the :meth:`append` using it."""
        seq = max(self._sequences.get(key, 0) + 1, floor)
        self._sequences[key] = seq
        return seq

    def append(self, entries: Sequence[SpoolEntry]) -> None:
        """Keep ``entries`` (one fsynced transaction), then apply the full-spool policy."""
        if not entries:
            return
        incoming = sum(len(e.payload) for e in entries)
        if self.when_full is SpoolPolicy.DROP_NEWEST and self._bytes + incoming > self.max_bytes:
            accepted = self._fit_newest(entries)
        else:
            accepted = list(entries)
        db = self.db
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO spool (topic, payload, key, seq) VALUES (?, ?, ?, ?)",
                [(e.topic, e.payload, e.key, e.seq) for e in accepted],
            )
            # Every key advances, refused entries included: their numbers were handed out.
            db.executemany(
                "INSERT INTO sequences (key, last) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET last = max(last, excluded.last)",
                [(e.key, e.seq) for e in entries],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count += len(accepted)
        self._bytes += sum(len(e.payload) for e in accepted)
        self.stats.appended += len(accepted)
        if self.when_full is SpoolPolicy.DROP_OLDEST and self._bytes > self.max_bytes:
            self._drop_oldest()

    def _fit_newest(self, entries: Sequence[SpoolEntry]) -> list[SpoolEntry]:
        room = self.max_bytes - self._bytes
        accepted: list[SpoolEntry] = []
        for entry in entries:
            if len(entry.payload) > room:
                break
            accepted.append(entry)
            room -= len(entry.payload)
        refused = len(entries) - len(accepted)
        self.stats.dropped += refused
        logger.warning(
            "spool %s is full (%d of %d bytes, policy drop_newest): refused %d new messages, "
            "%d refused since start",
            self.path,
            self._bytes,
            self.max_bytes,
            refused,
            self.stats.dropped,
        )
        return accepted

    def _drop_oldest(self) -> None:
        excess = self._bytes - self.max_bytes
        doomed: list[int] = []
        freed = 0
        for message_id, size in self.db.execute(
            "SELECT id, length(payload) FROM spool ORDER BY id"
        ):
            if freed >= excess:
                break
            doomed.append(message_id)
            freed += size
        dropped, freed = self._delete(doomed)
        self.stats.dropped += dropped
        logger.warning(
            "spool %s is full (%d bytes, policy drop_oldest): discarded the %d oldest "
            "messages (%d bytes), %d discarded since start",
            self.path,
            self.max_bytes,
            dropped,
            freed,
            self.stats.dropped,
        )

    def peek(self, limit: int, *, after: int = 0) -> list[SpooledMessage]:
        """The oldest ``limit`` messages with an id above ``after``, oldest first."""
        rows = self.db.execute(
            "SELECT id, topic, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [SpooledMessage(i, t, p) for i, t, p in rows]

    def due(self, limit: int, *, now: float, resend_after: float) -> list[SpooledMessage]:
        """The oldest ``limit`` messages to publish now: never sent, or without a receipt
        for longer than their wait (``resend_after``, doubled with every send up to 16x, so
        a centre that lags does not get every waiting batch again and again)."""
        rows = self.db.execute(
            f"SELECT id, topic, payload, sends FROM spool WHERE sent_at IS NULL "
            f"OR {_DUE_AT} <= ? ORDER BY id LIMIT ?",
            (resend_after, now, limit),
        ).fetchall()
        return [SpooledMessage(i, t, p, n) for i, t, p, n in rows]

    def mark_sent(self, ids: Sequence[int], at: float) -> None:
        """The broker acknowledged these: they wait for their receipt (rows from a spool
        file older than receipts, which have no key, are forgotten now)."""
        self._delete(ids, "key IS NULL")
        self._update(ids, "sent_at = ?, sends = sends + 1", (at,))

    def unsend_all(self) -> None:
        """Everything sent without a receipt goes again first (a new connection: the old
        broker may have died holding it, or the receipt with it)."""
        self.db.execute("UPDATE spool SET sent_at = NULL WHERE sent_at IS NOT NULL")

    def unsent(self) -> int:
        """Messages the broker has not acknowledged yet (the rest wait for receipts)."""
        return int(
            self.db.execute("SELECT count(*) FROM spool WHERE sent_at IS NULL").fetchone()[0]
        )

    def next_due(self, resend_after: float) -> float | None:
        """When the first message waiting for a receipt is due again (see :meth:`due`)."""
        value = self.db.execute(f"SELECT min({_DUE_AT}) FROM spool", (resend_after,)).fetchone()[0]
        return float(value) if value is not None else None

    def confirm(self, batches: Sequence[tuple[str, int]]) -> int:
        """Forget the batches a receipt names, as (key, seq); return how many were here."""
        if not batches:
            return 0
        db = self.db
        ids = [
            row[0]
            for key, seq in batches
            for row in db.execute("SELECT id FROM spool WHERE key = ? AND seq = ?", (key, seq))
        ]
        removed = self._delete(ids)[0]
        self.stats.confirmed += removed
        return removed

    def remove(self, ids: Sequence[int]) -> None:
        """Forget published messages (ids the policy already dropped are ignored)."""
        self.stats.removed += self._delete(ids)[0]

    def _update(self, ids: Sequence[int], assignment: str, values: tuple[object, ...]) -> None:
        db = self.db
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            db.execute(f"UPDATE spool SET {assignment} WHERE id IN ({marks})", (*values, *chunk))

    def _delete(self, ids: Sequence[int], condition: str = "1") -> tuple[int, int]:
        """Delete messages by id (those meeting ``condition``); return how many and how many
        payload bytes went."""
        if not ids:
            return 0, 0
        db = self.db
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN")
        removed = freed = 0
        try:
            for start in range(0, len(ids), 500):  # stay under sqlite's parameter limit
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                where = f"id IN ({marks}) AND {condition}"
                freed += db.execute(
                    f"SELECT coalesce(sum(length(payload)), 0) FROM spool WHERE {where}", chunk
                ).fetchone()[0]
                removed += db.execute(f"DELETE FROM spool WHERE {where}", chunk).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count -= removed
        self._bytes -= freed
        return removed, freed
