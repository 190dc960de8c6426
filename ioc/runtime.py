"""Where the services find their broker and database: configured servers in production,
or, for the demo, an embedded broker and a private PostgreSQL cluster under the state folder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from protocol import MqttEndpoint, Province, TimeWindow, Topics, load_province
from store import ALL_MIGRATIONS, Retention, StoreConfig, connect, migrate, sync_registry

from .embedded import EmbeddedBroker
from .servers import MosquittoBroker, PostgresCluster, mosquitto_binary, mosquitto_version
from .settings import Settings

logger = logging.getLogger(__name__)


class NotConfigured(RuntimeError):
    """A production service started without the URL it needs."""


DEMO_DATABASE_FILE = "demo-database-url"
"""In the state folder while a demo runs: its database's URL (mode 0600)."""


def database_url(settings: Settings) -> str:
    """IOC_DATABASE_URL, else the URL of the demo running on ``settings.state_dir``."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    demo = settings.state_dir / DEMO_DATABASE_FILE
    try:
        return demo.read_text().strip()
    except FileNotFoundError:
        raise NotConfigured(
            f"IOC_DATABASE_URL is not set and no demo is running in {settings.state_dir.resolve()}"
            f" (no {DEMO_DATABASE_FILE} there)"
        ) from None


@dataclass(frozen=True, slots=True)
class BrokerSide:
    """What a service that never touches the database needs (vision, the simulator)."""

    endpoint: MqttEndpoint
    province: Province
    topics: Topics


@dataclass(frozen=True, slots=True)
class Infrastructure(BrokerSide):
    store: StoreConfig
    broker_note: str = "configured broker"
    """Which broker is in use, for people (the demo's board)."""
    store_note: str = "configured database"


def broker_endpoint(settings: Settings, url: str | None = None) -> MqttEndpoint:
    """The configured broker, with credentials from IOC_MQTT_USERNAME/IOC_MQTT_PASSWORD (as
    `ioc mosquitto-config` writes them) taking precedence over any in the URL."""
    if url is None:
        if settings.mqtt_url is None:
            raise NotConfigured("IOC_MQTT_URL is not set")
        url = settings.mqtt_url.get_secret_value()
    ca_file = str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
    endpoint = MqttEndpoint.from_url(url, mqtt5=settings.mqtt_v5, ca_file=ca_file)
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        endpoint = endpoint.with_credentials(settings.mqtt_username, password)
    return endpoint


def broker_side(settings: Settings) -> BrokerSide:
    return BrokerSide(
        broker_endpoint(settings), load_province(settings.province), Topics(settings.topic_prefix)
    )


def store_config(settings: Settings, url: str) -> StoreConfig:
    return StoreConfig(
        url=url,
        statement_cache_size=settings.db_statement_cache_size,
        use_copy=settings.db_use_copy,
        acquire_timeout=settings.db_acquire_timeout,
    )


def retention(settings: Settings) -> Retention:
    """How long the growing tables keep their rows (``ioc store maintain``, ingest)."""
    return Retention(
        dead_letters=timedelta(days=settings.retain_dead_letters_days),
        alert_changes=timedelta(days=settings.retain_alert_changes_days),
        alert_evidence=timedelta(days=settings.retain_alert_evidence_days),
        cap_messages=timedelta(days=settings.retain_cap_messages_days),
        login_audit=timedelta(days=settings.retain_login_audit_days),
    )


def time_window(settings: Settings) -> TimeWindow:
    """The window around the receiver's clock that edge times must fall in."""
    return TimeWindow(past=settings.edge_time_past, future=settings.edge_time_future)


async def prepare_store(store: StoreConfig, province: Province) -> None:
    conn = await connect(store)
    try:
        await migrate(conn, ALL_MIGRATIONS)
        await sync_registry(conn, province)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def infrastructure(
    settings: Settings, *, embedded: bool = False, prepare: bool = True
) -> AsyncIterator[Infrastructure]:
    """Resolve the broker and the store; with ``embedded``, start what is not configured."""
    province = load_province(settings.province)
    async with contextlib.AsyncExitStack() as stack:
        if settings.mqtt_url is not None:
            endpoint = broker_endpoint(settings)
            broker_note = f"broker {endpoint.redacted()} (IOC_MQTT_URL)"
        elif embedded:
            endpoint, broker_note = await _local_broker(settings, stack)
        else:
            raise NotConfigured("IOC_MQTT_URL is not set")
        if settings.database_url is not None:
            store = store_config(settings, settings.database_url.get_secret_value())
            store_note = "database from IOC_DATABASE_URL"
        elif embedded:
            cluster = PostgresCluster(settings.state_dir / "postgres")
            await asyncio.to_thread(cluster.start)
            stack.callback(cluster.stop)
            binaries = cluster.binaries
            store_note = (
                f"PostgreSQL {await asyncio.to_thread(binaries.version)} "
                f"({binaries.origin} binaries, {binaries.bin_dir}) on 127.0.0.1:{cluster.port}, "
                f"data in {cluster.data}"
            )
            logger.info("private %s", store_note)
            store = store_config(settings, cluster.url)
        else:
            raise NotConfigured("IOC_DATABASE_URL is not set")
        if prepare:
            await prepare_store(store, province)
        yield Infrastructure(
            endpoint,
            province,
            Topics(settings.topic_prefix),
            store,
            broker_note=broker_note,
            store_note=store_note,
        )


async def _local_broker(
    settings: Settings, stack: contextlib.AsyncExitStack
) -> tuple[MqttEndpoint, str]:
    """A private Mosquitto (MQTT 5) when installed, else the in-process amqtt (3.1.1)."""
    binary = mosquitto_binary()
    if settings.demo_broker == "mosquitto" and binary is None:
        raise NotConfigured("IOC_DEMO_BROKER=mosquitto but mosquitto is not installed")
    if binary is not None and settings.demo_broker != "amqtt":
        mosquitto = MosquittoBroker(settings.state_dir / "mosquitto", persistence=False)
        await asyncio.to_thread(mosquitto.start)
        stack.callback(mosquitto.stop)
        note = f"Mosquitto {mosquitto_version(binary)} (MQTT 5) on 127.0.0.1:{mosquitto.port}"
        logger.info("private %s", note)
        return MqttEndpoint.from_url(mosquitto.url, mqtt5=True), note
    broker = await stack.enter_async_context(EmbeddedBroker())
    note = f"amqtt in-process (MQTT 3.1.1) on 127.0.0.1:{broker.port}"
    return MqttEndpoint.from_url(broker.url, mqtt5=False), note
