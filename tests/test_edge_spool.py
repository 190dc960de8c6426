"""The on-disk spool: order, persistence across restarts, sequence numbers, the full policy."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from edge import Spool, SpoolEntry, SpoolPolicy


def _entries(spool: Spool, key: str, n: int, size: int = 100) -> list[SpoolEntry]:
    out = []
    for _ in range(n):
        seq = spool.next_sequence(key)
        out.append(SpoolEntry(f"t/{key}", f"{key}:{seq}:".encode().ljust(size, b"."), key, seq))
    return out


def test_messages_come_back_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool(path) as spool:
        spool.append(_entries(spool, "ap-a", 3) + _entries(spool, "ap-b", 2))
        first = spool.peek(2)
        assert [m.payload[:8] for m in first] == [b"ap-a:1:.", b"ap-a:2:."]
        spool.remove([m.id for m in first])
        assert len(spool) == 3
    with Spool(path) as spool:  # a restarted agent
        assert len(spool) == 3
        assert spool.size_bytes == 300
        rest = spool.peek(10)
        assert [m.payload[:8] for m in rest] == [b"ap-a:3:.", b"ap-b:1:.", b"ap-b:2:."]
        assert [m.topic for m in rest] == ["t/ap-a", "t/ap-b", "t/ap-b"]
        # Sequence numbers carry on where they stopped.
        assert spool.next_sequence("ap-a") == 4
        assert spool.next_sequence("ap-new") == 1
        assert spool.peek(10, after=rest[1].id) == rest[2:]


def test_a_sequence_number_not_yet_stored_is_handed_out_again(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool(path) as spool:
        spool.append(_entries(spool, "ap-a", 2))
        assert spool.next_sequence("ap-a") == 3  # never appended: the agent died here
    with Spool(path) as spool:
        assert spool.next_sequence("ap-a") == 3
        assert spool.next_sequence("ap-a", floor=1_000) == 1_000
        spool.append([SpoolEntry("t", b"x", "ap-a", 1_000)])
    with Spool(path) as spool:
        assert spool.next_sequence("ap-a") == 1_001


def test_full_spool_drops_the_oldest_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path / "s.sqlite", max_bytes=1_000) as spool, caplog.at_level(logging.WARNING):
        spool.append(_entries(spool, "ap-a", 8))
        assert spool.stats.dropped == 0
        spool.append(_entries(spool, "ap-a", 5))
        assert spool.size_bytes <= 1_000
        assert len(spool) == 10
        assert spool.stats.dropped == 3
        kept = spool.peek(100)
        assert kept[0].payload.startswith(b"ap-a:4:")
        assert kept[-1].payload.startswith(b"ap-a:13:")
    assert "drop_oldest" in caplog.text
    assert "discarded the 3 oldest" in caplog.text


def test_full_spool_with_drop_newest_refuses_new_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.sqlite"
    with (
        Spool(path, max_bytes=1_000, when_full=SpoolPolicy.DROP_NEWEST) as spool,
        caplog.at_level(logging.WARNING),
    ):
        spool.append(_entries(spool, "ap-a", 8))
        spool.append(_entries(spool, "ap-a", 5))
        assert len(spool) == 10
        assert spool.stats.dropped == 3
        kept = spool.peek(100)
        assert kept[0].payload.startswith(b"ap-a:1:")
        assert kept[-1].payload.startswith(b"ap-a:10:")
    assert "refused 3 new messages" in caplog.text
    with Spool(path) as spool:
        # The refused batches' numbers were handed out: they are never reused.
        assert spool.next_sequence("ap-a") == 14


def test_a_sent_batch_waits_for_its_receipt_and_goes_again_when_due(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.sqlite") as spool:
        spool.append(_entries(spool, "ap-a", 3))
        sent = spool.due(10, now=0.0, resend_after=30.0)
        assert len(sent) == 3
        spool.mark_sent([m.id for m in sent], at=100.0)
        assert (len(spool), spool.unsent()) == (3, 0)
        assert spool.due(10, now=129.0, resend_after=30.0) == []  # not due before 30 s
        assert spool.next_due(30.0) == 130.0
        assert spool.confirm([("ap-a", 2), ("ap-b", 1)]) == 1  # only what is here
        again = spool.due(10, now=130.0, resend_after=30.0)
        assert [(m.payload[:7], m.sends) for m in again] == [(b"ap-a:1:", 1), (b"ap-a:3:", 1)]
        spool.mark_sent([m.id for m in again], at=130.0)
        # Each send doubles the wait: a lagging centre is not flooded with repeats.
        assert spool.due(10, now=189.0, resend_after=30.0) == []
        assert spool.next_due(30.0) == 190.0
        spool.unsend_all()  # a new connection: everything without a receipt goes first
        assert spool.unsent() == 2
        assert spool.stats.confirmed == 1


def test_a_spool_file_from_before_receipts_is_upgraded_and_its_rows_go_on_puback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE spool (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL); CREATE TABLE sequences (key TEXT PRIMARY KEY, last INTEGER "
        "NOT NULL); INSERT INTO spool (topic, payload) VALUES ('t/ap-a', x'00');"
    )
    old.commit()
    old.close()
    with Spool(path) as spool:
        spool.append(_entries(spool, "ap-a", 1))
        ids = [m.id for m in spool.due(10, now=0.0, resend_after=30.0)]
        spool.mark_sent(ids, at=1.0)
        assert len(spool) == 1  # the old row had no key: no receipt can name it
        assert spool.confirm([("ap-a", 1)]) == 1
        assert len(spool) == 0
