"""Clips at the centre, over the real API and PostgreSQL: an edge's resumable upload is
checked and kept with its custody chain; operators and police (their incidents only) play
it, each read recorded; planners see none; bad uploads are refused for good; the police's
receiver gets, signed, a CAP Update whose resource validates and whose link works; `verify`
finds a changed byte and an edited custody entry."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from console_support import Console, raise_alert, route_to_police, seed_registry, serve
from evidence_support import filled_ring
from lxml import etree
from police_receiver import Receiver, police_receiver

from alerts import DeliveryWorker, RuleBook, Rules, parse_rules
from console_api import Role, create_app
from evidence import (
    EvidenceCentre,
    EvidenceSettings,
    agent_token,
    apply_retention,
    custody_log,
    hold_incident,
    release_incident,
    verify_evidence,
)
from protocol import CLIP_MANIFEST, ClipManifest, EventKind, Province
from store import StoreConfig

pytestmark = [pytest.mark.postgres]
SECRET = "s" * 40
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"police-dispatch-shared-secret-32").decode()
XSD = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "cap" / "CAP-v1.2.xsd")))
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
START = 1_000_000.0
CHUNK = 48 * 1024


def sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


@contextlib.asynccontextmanager
async def centre_console(
    database: StoreConfig,
    db: asyncpg.Connection,
    root: Path,
    *,
    max_megabytes: float = 64,
    settings: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Console, EvidenceCentre]]:
    """``settings``: more ``EvidenceSettings`` fields (an S3 store's)."""
    evidence = EvidenceSettings(
        secret=SECRET,
        dir=root,
        public_url="http://placeholder",
        max_megabytes=max_megabytes,
        **(settings or {}),
    )
    centre = EvidenceCentre.create(evidence, {"edge-a": {"cam-a"}})
    assert centre is not None
    app = create_app(database, evidence=centre)
    async with serve(app) as host:
        # Links must point at this server, as IOC_EVIDENCE_PUBLIC_URL would in production.
        object.__setattr__(centre.links, "base_url", f"http://{host}")
        yield Console(app, host, db), centre


def agent_http(console: Console, agent: str = "edge-a") -> httpx.AsyncClient:
    token = agent_token(SECRET.encode(), agent)
    return console.http(f"{agent}:{token}")


def manifest_for(mp4: bytes, alert_id: str, **changes: Any) -> ClipManifest:
    fields: dict[str, Any] = {
        "clip_id": "clip-1",
        "alert_id": alert_id,
        "camera_id": "cam-a",
        "agent_id": "edge-a",
        "event_at": START + 10,
        "started_at": START,
        "ended_at": START + 20,
        "frames": 200,
        "size": len(mp4),
        "sha256": hashlib.sha256(mp4).hexdigest(),
        "cut_at": START + 21,
    }
    fields.update(changes)
    return ClipManifest(**fields)


async def upload(
    http: httpx.AsyncClient, manifest: ClipManifest, data: bytes, *, stop_after: int | None = None
) -> httpx.Response:
    """Start or resume, then send chunks from where the centre stands."""
    answer = await http.post("/api/v1/evidence/uploads", content=CLIP_MANIFEST.encode(manifest))
    if answer.status_code != 200:
        return answer
    offset = answer.json()["offset"]
    sent = 0
    while offset < len(data):
        if stop_after is not None and sent == stop_after:
            return answer
        answer = await http.put(
            f"/api/v1/evidence/uploads/{manifest.clip_id}",
            params={"offset": offset},
            content=data[offset : offset + CHUNK],
        )
        if answer.status_code not in (200, 201):
            return answer
        offset = answer.json()["offset"]
        sent += 1
    return answer


def _police_rules(receiver: Receiver) -> Rules:
    """The police endpoint of ``POLICE_ROUTING`` ("dispatch"), at the test receiver."""
    endpoint = {
        "id": "dispatch",
        "url": receiver.url("/dispatch"),
        "allow_plain_http": True,
        "secret_env": "IOC_POLICE_SECRET",
    }
    return parse_rules(
        {"police": {"sender": "ioc.test.invalid", "endpoints": [endpoint]}},
        Province(),
        environ={"IOC_POLICE_SECRET": WEBHOOK_SECRET},
    )


def _clip_delivered(receiver: Receiver) -> bool:
    return any(b"<resourceDesc>video clip</resourceDesc>" in b for b in receiver.bodies.values())


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return filled_ring(100).cut(START, START + 10).mp4


async def test_an_uploaded_clip_is_kept_played_and_accounted_for(
    database: StoreConfig, db: asyncpg.Connection, tmp_path: Path, mp4: bytes
) -> None:
    await seed_registry(db)
    routing = await route_to_police(db)
    alert_id, _ = await raise_alert(db, routing=routing)  # police told: an Alert is staged
    other_id, _ = await raise_alert(db, kind=EventKind.STOPPED_VEHICLE, zone=None)  # not routed
    async with (
        centre_console(database, db, tmp_path) as (console, centre),
        agent_http(console) as agent,
    ):
        manifest = manifest_for(mp4, alert_id)
        assert len(mp4) > 2 * CHUNK  # several chunks, so resuming means something
        half = await upload(agent, manifest, mp4, stop_after=1)  # the link drops
        assert half.status_code == 200
        assert (await agent.get("/api/v1/evidence/uploads/clip-1")).json()["offset"] == CHUNK
        done = await upload(agent, manifest, mp4)  # resumes from the centre's offset
        assert done.status_code == 201, done.text
        again = await upload(agent, manifest, mp4)  # a repeat after a lost answer
        assert again.status_code == 200
        assert again.json()["offset"] == len(mp4)

        stack = await contextlib.AsyncExitStack().__aenter__()
        operator = await stack.enter_async_context(await console.as_role(Role.OPERATOR))
        clips = (await operator.get(f"/api/v1/alerts/{alert_id}/clips")).json()
        assert [c["sha256"] for c in clips] == [hashlib.sha256(mp4).hexdigest()]
        assert clips[0]["sha1"] == sha1(mp4)
        played = await operator.get(clips[0]["url"])
        assert played.status_code == 200
        assert played.headers["content-type"] == "video/mp4"
        assert played.content == mp4
        exported = await operator.get(clips[0]["url"], params={"export": "true"})
        assert "attachment" in exported.headers["content-disposition"]

        police = await stack.enter_async_context(await console.as_role(Role.POLICE))
        assert (await police.get(clips[0]["url"])).status_code == 200  # their incident
        planner = await stack.enter_async_context(await console.as_role(Role.PLANNER))
        assert (await planner.get(clips[0]["url"])).status_code == 403
        assert (await planner.get(f"/api/v1/alerts/{alert_id}/clips")).status_code == 403
        anonymous = await stack.enter_async_context(console.http())
        assert (await anonymous.get(clips[0]["url"])).status_code == 401

        # A clip of an incident the police were never sent: not theirs to fetch.
        other = manifest_for(mp4, other_id, clip_id="clip-2")
        assert (await upload(agent, other, mp4)).status_code == 201
        assert (await police.get("/api/v1/evidence/clips/clip-2/file")).status_code == 404
        assert (await police.get(f"/api/v1/alerts/{other_id}/clips")).status_code == 404

        # The police receive, signed, the Alert and then an Update carrying the clip; it
        # validates and its link alone fetches the clip.
        async with (
            police_receiver(WEBHOOK_SECRET) as receiver,
            DeliveryWorker(database, RuleBook.fixed(_police_rules(receiver))),
        ):
            await asyncio.wait_for(receiver.wait_until(_clip_delivered), 30)
        assert all(r.signature_valid for r in receiver.requests)
        bodies = [receiver.bodies[w] for w in receiver.processed["/dispatch"]]
        kinds = [etree.fromstring(b).findtext("cap:msgType", namespaces=CAP) for b in bodies]
        assert kinds == ["Alert", "Update"]
        document = etree.fromstring(bodies[1])
        XSD.assertValid(document)
        resource = document.find("cap:info/cap:resource", CAP)
        assert resource is not None
        assert resource.findtext("cap:resourceDesc", namespaces=CAP) == "video clip"
        assert resource.findtext("cap:mimeType", namespaces=CAP) == "video/mp4"
        assert resource.findtext("cap:size", namespaces=CAP) == str(len(mp4))
        assert resource.findtext("cap:digest", namespaces=CAP) == sha1(mp4)
        uri = resource.findtext("cap:uri", namespaces=CAP)
        assert uri is not None
        async with httpx.AsyncClient() as dispatcher:  # no console token: the link alone
            fetched = await dispatcher.get(uri)
            assert fetched.status_code == 200
            assert sha1(fetched.content) == sha1(mp4)
            forged = await dispatcher.get(uri.replace("clip-1", "clip-2"))
            assert forged.status_code == 403

        log = await custody_log(db, "clip-1")
        actions = [(e.action, e.actor) for e in log]
        assert actions[:4] == [
            ("cut", "edge-a"),
            ("received", "centre"),
            ("verified", "centre"),
            ("delivered", "centre"),
        ]
        assert ("viewed", "operator") in [(a, r.split("-")[0]) for a, r in actions]
        assert ("exported", "link:police") in actions

        report = await verify_evidence(db, centre.store)
        assert report.ok, report.findings
        assert report.clips == 2
        await stack.aclose()


async def test_verify_finds_a_changed_byte_and_an_edited_custody_entry(
    database: StoreConfig, db: asyncpg.Connection, tmp_path: Path, mp4: bytes
) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    async with (
        centre_console(database, db, tmp_path) as (console, centre),
        agent_http(console) as agent,
    ):
        assert (await upload(agent, manifest_for(mp4, alert_id), mp4)).status_code == 201
        assert (await verify_evidence(db, centre.store)).ok
        key = await db.fetchval("SELECT storage_key FROM evidence_clips")
        path = tmp_path / "clips" / key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        report = await verify_evidence(db, centre.store)
        assert [f.problem.split(":")[0] for f in report.findings] == ["bytes changed"]
        async with await console.as_role(Role.OPERATOR) as operator:
            answer = await operator.get("/api/v1/evidence/clips/clip-1/file")
            assert answer.status_code == 500
        path.write_bytes(mp4)

    # The log refuses edits; an owner who forces one is still found out.
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("UPDATE evidence_custody SET actor = 'someone' WHERE seq = 1")
    await db.execute("ALTER TABLE evidence_custody DISABLE TRIGGER evidence_custody_append_only")
    await db.execute("UPDATE evidence_custody SET actor = 'someone' WHERE seq = 1")
    report = await verify_evidence(db, centre.store)
    assert any("edited" in f.problem for f in report.findings)
    await db.execute("DELETE FROM evidence_custody WHERE seq = 2")
    report = await verify_evidence(db, centre.store)
    assert any("missing" in f.problem for f in report.findings)


async def test_bad_uploads_are_refused_for_good_and_logged(
    database: StoreConfig, db: asyncpg.Connection, tmp_path: Path, mp4: bytes
) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    async with (
        centre_console(database, db, tmp_path, max_megabytes=0.5) as (console, _),
        agent_http(console) as agent,
    ):
        wrong_hash = manifest_for(mp4, alert_id, clip_id="c-hash", sha256="0" * 64)
        answer = await upload(agent, wrong_hash, mp4)
        assert (answer.status_code, answer.headers["upload-final"]) == (422, "true")
        assert "SHA-256" in answer.json()["detail"]

        camera = manifest_for(mp4, alert_id, clip_id="c-cam", camera_id="cam-b")
        answer = await upload(agent, camera, mp4)
        assert (answer.status_code, answer.headers["upload-final"]) == (403, "true")

        other_alert, _ = await raise_alert(db, camera="cam-b", district="go-cong", zone=None)
        elsewhere = manifest_for(mp4, other_alert, clip_id="c-alert")  # cam-a's clip, cam-b's alert
        answer = await upload(agent, elsewhere, mp4)
        assert (answer.status_code, answer.headers["upload-final"]) == (422, "true")

        big = manifest_for(mp4, alert_id, clip_id="c-big", size=1 << 20)
        assert (await upload(agent, big, mp4)).status_code == 413

        junk = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8
        answer = await upload(agent, manifest_for(junk, alert_id, clip_id="c-junk"), junk)
        assert (answer.status_code, answer.headers["upload-final"]) == (415, "true")

        async with console.http(f"edge-a:{'0' * 64}") as forged:
            answer = await forged.post("/api/v1/evidence/uploads", content=b"{}")
            assert answer.status_code == 401

    reasons = await db.fetch("SELECT clip_id, reason FROM evidence_refusals ORDER BY at")
    assert [r["clip_id"] for r in reasons] == ["c-hash", "c-cam", "c-alert", "c-big", "c-junk"]
    assert await db.fetchval("SELECT count(*) FROM evidence_clips") == 0
    assert list((tmp_path / "uploads").iterdir()) == []


def ioc_evidence_verify(database: StoreConfig, root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env |= {"IOC_DATABASE_URL": database.url, "IOC_EVIDENCE_DIR": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "ioc", "evidence", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_retention_keeps_held_incidents_and_verify_runs_as_a_command(
    database: StoreConfig, db: asyncpg.Connection, tmp_path: Path, mp4: bytes
) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    async with (
        centre_console(database, db, tmp_path) as (console, centre),
        agent_http(console) as agent,
    ):
        assert (await upload(agent, manifest_for(mp4, alert_id), mp4)).status_code == 201
    ok = await asyncio.to_thread(ioc_evidence_verify, database, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1]) == {
        "clips": 1,
        "custody_entries": 3,
        "problems": 0,
        "ok": True,
    }
    key = await db.fetchval("SELECT storage_key FROM evidence_clips")
    path = tmp_path / "clips" / key
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    broken = await asyncio.to_thread(ioc_evidence_verify, database, tmp_path)
    assert broken.returncode == 1
    assert "BROKEN clip-1: bytes changed" in broken.stderr
    path.write_bytes(mp4)

    later = datetime.now(UTC) + timedelta(days=31)
    await hold_incident(db, alert_id, "operator-1", "court case 12/2026")
    assert await apply_retention(db, centre.store, now=later, days={}) == []
    assert path.exists()
    await release_incident(db, alert_id, "operator-1")
    assert await apply_retention(db, centre.store, now=later, days={"intrusion": 60}) == []
    assert await apply_retention(db, centre.store, now=later, days={}) == ["clip-1"]
    assert not path.exists()
    log = [(e.action, e.actor) for e in await custody_log(db, "clip-1")]
    assert log[-3:] == [
        ("held", "operator-1"),
        ("released", "operator-1"),
        ("deleted", "retention"),
    ]
    assert (await verify_evidence(db, centre.store)).ok  # a deletion is not a break
