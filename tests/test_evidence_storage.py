"""Clip stores: the directory and an S3-compatible store keep the same four-call contract,
and the centre works on either. The S3 store is tested against a real S3 HTTP server
process (moto's server mode), not a mock of the client."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import boto3
import pytest
from console_support import raise_alert, seed_registry
from mypy_boto3_s3 import S3Client
from test_evidence_centre import agent_http, centre_console, manifest_for, mp4, upload

from console_api import Role
from evidence import ClipStore, DirectoryClipStore, S3ClipStore, verify_evidence
from ioc.servers import free_port, wait_for_port
from store import StoreConfig

__all__ = ["mp4"]  # the clip fixture, shared with the centre's tests
BUCKET = "ioc-evidence"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3-compatible HTTP server in its own process, with an empty bucket."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with (
        pytest.MonkeyPatch.context() as env,
        log.open("wb") as out,
        subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        try:
            wait_for_port(port, server, 30.0, log)
            url = f"http://127.0.0.1:{port}"
            boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
            yield url
        finally:
            server.terminate()


@pytest.fixture
def s3(s3_server: str) -> S3Client:
    return boto3.client("s3", endpoint_url=s3_server)


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ClipStore:
    if request.param == "directory":
        return DirectoryClipStore(tmp_path / "clips")
    url: str = request.getfixturevalue("s3_server")
    return S3ClipStore(BUCKET, endpoint_url=url, prefix="contract")


def test_every_store_keeps_reads_replaces_and_forgets(store: ClipStore, tmp_path: Path) -> None:
    source = tmp_path / "part"
    source.write_bytes(b"\x00\x01clip" * 1000)
    key = "2026/12/04/clip-ab12.mp4"
    assert not store.exists(key)
    with pytest.raises(FileNotFoundError):
        store.read(key)
    store.put(key, source)
    assert store.exists(key)
    assert store.read(key) == source.read_bytes()
    source.write_bytes(b"other")
    store.put(key, source)  # replaces
    assert store.read(key) == b"other"
    store.delete(key)
    store.delete(key)  # nothing there: no error
    assert not store.exists(key)
    for bad in ("../etc/passwd", "/abs.mp4", "Upper.mp4", "a/../b.mp4"):
        with pytest.raises(ValueError, match="must match"):
            store.put(bad, source)


async def test_the_centre_keeps_plays_and_verifies_clips_in_an_s3_bucket(
    database: StoreConfig,
    db: asyncpg.Connection,
    tmp_path: Path,
    mp4: bytes,
    s3: S3Client,
) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    s3_settings = {
        "s3_bucket": BUCKET,
        "s3_endpoint_url": s3.meta.endpoint_url,
        "s3_prefix": "centre",
    }
    async with (
        centre_console(database, db, tmp_path, settings=s3_settings) as (console, centre),
        agent_http(console) as agent,
    ):
        assert isinstance(centre.store, S3ClipStore)
        assert (await upload(agent, manifest_for(mp4, alert_id), mp4)).status_code == 201
        key = await db.fetchval("SELECT storage_key FROM evidence_clips")
        # The bytes are in the bucket, not on the centre's disk.
        kept = s3.get_object(Bucket=BUCKET, Key=f"centre/{key}")["Body"].read()
        assert kept == mp4
        assert not (tmp_path / "clips").exists()
        async with await console.as_role(Role.OPERATOR) as operator:
            played = await operator.get("/api/v1/evidence/clips/clip-1/file")
            assert played.status_code == 200
            assert played.content == mp4
            assert (await verify_evidence(db, centre.store)).ok

            changed = bytearray(mp4)
            changed[len(changed) // 2] ^= 0x01
            s3.put_object(Bucket=BUCKET, Key=f"centre/{key}", Body=bytes(changed))
            report = await verify_evidence(db, centre.store)
            assert [f.problem.split(":")[0] for f in report.findings] == ["bytes changed"]
            assert (await operator.get("/api/v1/evidence/clips/clip-1/file")).status_code == 500
