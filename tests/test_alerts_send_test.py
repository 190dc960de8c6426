"""``ioc alerts send-test`` as a real process against a real receiver: all three messages
delivered and signed (exit 0), a failing receiver (exit 1), and the process killed with
SIGKILL mid-send, after which a delivery worker sends what it left: nothing lost."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from conftest import DATA, ROOT, run_ioc
from lxml import etree
from police_receiver import police_receiver

from alerts import CAP_NS, DeliveryWorker, RuleBook
from ioc.alerts_commands import SEND_TEST_ENDPOINT, send_test_rules
from protocol import Province
from store import StoreConfig

pytestmark = pytest.mark.postgres
SECRET = "whsec_" + base64.b64encode(b"send-test-secret-of-32-bytes-ok!").decode()
SCHEMA = etree.XMLSchema(etree.parse(str(DATA / "cap" / "CAP-v1.2.xsd")))


async def _start(
    database: StoreConfig, url: str, *extra: str, secret_env: bool = True
) -> asyncio.subprocess.Process:
    env = {
        **{k: v for k, v in os.environ.items() if k != "IOC_SEND_TEST_SECRET"},
        "IOC_DATABASE_URL": database.url,
        "IOC_PROVINCE": str(DATA / "clips.yaml"),
        "IOC_ALERT_RULES": str(ROOT / "config" / "alert-rules.yaml"),
        "IOC_LOG_LEVEL": "WARNING",
    }
    if secret_env:
        env["IOC_SEND_TEST_SECRET"] = SECRET  # never on the command line
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ioc",
        "alerts",
        "send-test",
        "--to",
        url,
        *extra,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_send_test_delivers_alert_update_cancel(
    database: StoreConfig, tmp_path: Path
) -> None:
    """The secret from a file (a command line is visible to every user of the machine)."""
    (tmp_path / "secret").write_text(SECRET + "\n")
    async with police_receiver(SECRET) as receiver:
        process = await _start(
            database,
            receiver.url("/dispatch"),
            "--secret-file",
            str(tmp_path / "secret"),
            secret_env=False,
        )
        out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "Alert: delivered (HTTP 204)",
        "Update: delivered (HTTP 204)",
        "Cancel: delivered (HTTP 204)",
        "all three messages delivered",
    ]
    assert all(r.signature_valid for r in receiver.requests)
    docs = [etree.fromstring(receiver.bodies[i]) for i in receiver.processed["/dispatch"]]
    for doc in docs:
        SCHEMA.assertValid(doc)
    ns = {"cap": CAP_NS}
    assert [d.findtext("cap:msgType", namespaces=ns) for d in docs] == ["Alert", "Update", "Cancel"]
    assert {d.findtext("cap:status", namespaces=ns) for d in docs} == {"Test"}
    # The sender comes from the shipped rules file.
    assert {d.findtext("cap:sender", namespaces=ns) for d in docs} == {"ioc.tiengiang.gov.vn"}


def test_the_secret_is_never_taken_from_the_command_line() -> None:
    refused = run_ioc(
        "alerts", "send-test", "--to", "https://x.invalid/", "--secret", SECRET, timeout=60
    )
    assert refused.returncode == 2
    assert "No such option: --secret" in refused.stderr


async def test_send_test_fails_when_the_receiver_keeps_failing(database: StoreConfig) -> None:
    async with police_receiver(SECRET) as receiver:
        receiver.scripts["/down"] = ["fail"] * 10
        process = await _start(database, receiver.url("/down"), "--max-failures", "2")
        out, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 1
    lines = out.decode().splitlines()
    assert lines[-1] == "send-test FAILED"
    assert "Alert: not delivered after 2 attempt(s) (last: HTTP 500)" in lines


async def test_killed_mid_send_then_restarted_loses_nothing(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    async with police_receiver(SECRET) as receiver:
        receiver.scripts["/dispatch"] = ["hang"]
        url = receiver.url("/dispatch")
        process = await _start(database, url)
        await asyncio.wait_for(receiver.wait_until(lambda r: len(r.requests) == 1), 60)
        process.kill()  # SIGKILL while the receiver holds the Alert's request
        await process.wait()
        receiver.release_hung.set()
        assert (
            await db.fetchval("SELECT count(*) FROM police_deliveries WHERE status = 'pending'")
            == 3
        )
        rules = send_test_rules(clips_province, url, SECRET, {}, max_failures=5)
        async with DeliveryWorker(database, RuleBook.fixed(rules)) as worker:
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 3), 15)
    first, again = (r.headers["webhook-id"] for r in receiver.requests[:2])
    assert first == again
    assert len(set(receiver.processed["/dispatch"])) == 3
    assert (
        await db.fetchval(
            """SELECT count(*) FROM police_deliveries
               WHERE status = 'delivered' AND endpoint_id = $1""",
            SEND_TEST_ENDPOINT,
        )
        == 3
    )
