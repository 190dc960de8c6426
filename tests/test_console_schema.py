"""schemathesis against the console's OpenAPI schema: generated requests, as an administrator,
never make the server fail (no 5xx; camera snapshots go to an edge that answers).

One server for the module, in a thread of its own with its own event loop (schemathesis calls
it synchronously), over a database seeded with a registry and alerts; every test item gets a
fresh administrator token, since a generated logout or password change may end the last one.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import schemathesis
import uvicorn
from console_support import (
    SnapshotEdge,
    raise_alert,
    route_to_police,
    seed_registry,
    store_evidence,
    tiny_jpeg,
)
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from citizens import NewReport, accept_report, load_catalogue
from console_api import Role, add_user, create_app, issue_token
from ioc.servers import MosquittoBroker, PostgresCluster
from protocol import EventKind, MqttEndpoint, Topics
from store import StoreConfig

pytestmark = [pytest.mark.postgres, pytest.mark.mosquitto]
_names = itertools.count(1)


class ThreadedConsole:
    """The console app served by uvicorn in a thread (its own loop), for synchronous clients,
    with an edge on the same loop answering the camera snapshots it asks for."""

    def __init__(self, store: StoreConfig, mqtt: MqttEndpoint, topics: Topics) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.mqtt, self.topics = mqtt, topics
        app = create_app(store, mqtt=mqtt, topics=topics)
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        async with SnapshotEdge(self.mqtt, self.topics):
            await self.server.serve(sockets=[self.sock])

    def __enter__(self) -> ThreadedConsole:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


async def _prepare(cluster: PostgresCluster, name: str) -> None:
    admin = await asyncpg.connect(cluster.url_for("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE ioc_template")
    finally:
        await admin.close()
    db = await asyncpg.connect(cluster.url_for(name))
    try:
        await seed_registry(db)
        routing = await route_to_police(db)
        evident, _ = await raise_alert(db, routing=routing)
        await store_evidence(db, evident, tiny_jpeg())
        await raise_alert(db, kind=EventKind.WRONG_WAY, camera="cam-b", district="go-cong")
        await add_user(db, "admin-1", Role.ADMIN, "correct horse battery")
        catalogue = load_catalogue()  # one citizen report, so Open311 reads render one
        noise = catalogue.service("noise")
        assert noise is not None
        await accept_report(
            db, catalogue, NewReport(service=noise, lat=10.36, lon=106.36, district_id="my-tho")
        )
    finally:
        await db.close()


async def _drop(cluster: PostgresCluster, name: str) -> None:
    admin = await asyncpg.connect(cluster.url_for("postgres"))
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def console_url(
    postgres: PostgresCluster, mosquitto: MosquittoBroker
) -> Iterator[tuple[str, StoreConfig]]:
    name = f"schema{next(_names)}"
    asyncio.run(_prepare(postgres, name))
    store = StoreConfig(url=postgres.url_for(name), max_size=5)
    mqtt = MqttEndpoint.from_url(mosquitto.url)
    with ThreadedConsole(store, mqtt, Topics(prefix=f"{name}/v1")) as console:
        yield console.url, store
    asyncio.run(_drop(postgres, name))


@pytest.fixture
def admin_token(console_url: tuple[str, StoreConfig]) -> str:
    async def issue() -> str:
        conn = await asyncpg.connect(console_url[1].url)
        try:
            return (await issue_token(conn, "admin-1")).token
        finally:
            await conn.close()

    return asyncio.run(issue())


# The schema comes from the app itself (building it needs no database); the requests go to
# the server the fixture starts.
# The coverage phase is off: it builds its boundary cases while pytest collects, 210 s of
# every run (each xdist worker collects the whole suite), and sends them all to every
# operation. Fuzzing (12 examples an operation) and the explicit examples still run.
schema = schemathesis.openapi.from_dict(
    create_app(StoreConfig(url="postgresql://unused/never-connected")).openapi(),
    config=SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}}),
)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_no_request_makes_the_server_fail(
    case: schemathesis.Case[Any], console_url: tuple[str, StoreConfig], admin_token: str
) -> None:
    case.call_and_validate(
        base_url=console_url[0],
        headers={"Authorization": f"Bearer {admin_token}"},
        checks=[not_a_server_error],
    )
