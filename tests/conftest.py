"""Real servers for the tests: one Mosquitto and one PostgreSQL per session, on free ports,
removed afterwards. Each test gets its own database (from a migrated template) and its own
MQTT topic prefix, so tests never see each other's data."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from ioc.servers import MosquittoBroker, PostgresCluster, discard_private_homes
from protocol import MqttEndpoint, Province, Topics, load_province
from store import ALL_MIGRATIONS, StoreConfig, migrate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
VIDEO = ROOT / "data" / "video"
_counter = itertools.count(1)


def run_ioc(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m ioc ARGS`` from the project folder as an operator runs it on a fresh
    machine: no ``IOC_*`` setting inherited from the test run. Output captured as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    return subprocess.run(
        [sys.executable, "-m", "ioc", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def server_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="ioc-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _no_private_homes_left(
    server_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """As root, servers keep their files in private homes under /var/tmp (ioc.servers);
    after the session (every server stopped: this fixture is set up first, so torn down
    last) those of this session's folders are removed. Other sessions' are left alone."""
    yield
    for folder in (server_root, tmp_path_factory.getbasetemp()):
        discard_private_homes(folder)


@pytest.fixture(scope="session")
def postgres(server_root: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(server_root / "postgres", durable=False)
    cluster.start()
    asyncio.run(_make_template(cluster))
    yield cluster
    cluster.stop("immediate")


async def _make_template(cluster: PostgresCluster) -> None:
    conn = await asyncpg.connect(cluster.url_for("postgres"))
    try:
        await conn.execute("CREATE DATABASE ioc_template")
    finally:
        await conn.close()
    conn = await asyncpg.connect(cluster.url_for("ioc_template"))
    try:
        await migrate(conn, ALL_MIGRATIONS)
    finally:
        await conn.close()


@pytest.fixture
async def database(postgres: PostgresCluster) -> AsyncIterator[StoreConfig]:
    """A fresh, migrated database for one test."""
    name = f"t{next(_counter)}"
    admin = await asyncpg.connect(postgres.url_for("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE ioc_template")
    finally:
        await admin.close()
    yield StoreConfig(url=postgres.url_for(name), max_size=5)
    admin = await asyncpg.connect(postgres.url_for("postgres"))
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db(database: StoreConfig) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def mosquitto(server_root: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(server_root / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mqtt(mosquitto: MosquittoBroker) -> MqttEndpoint:
    return MqttEndpoint.from_url(mosquitto.url)


@pytest.fixture
def topics() -> Topics:
    """A topic prefix of this test's own."""
    return Topics(prefix=f"test{next(_counter)}/v1")


@pytest.fixture
def clips_province() -> Province:
    """Cameras over the shipped clips, zones drawn on the footage."""
    return load_province(DATA / "clips.yaml")
