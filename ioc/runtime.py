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
from .servers import PostgresCluster
from .settings import Settings

logger = logging.getLogger(__name__)


class NotConfigured(RuntimeError):
    """A production service started without the URL it needs."""


@dataclass(frozen=True, slots=True)
class BrokerSide:
    """What a service that never touches the database needs (vision, the simulator)."""

    endpoint: MqttEndpoint
    province: Province
    topics: Topics


@dataclass(frozen=True, slots=True)
class Infrastructure(BrokerSide):
    store: StoreConfig


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
        elif embedded:
            broker = await stack.enter_async_context(EmbeddedBroker())
            endpoint = MqttEndpoint.from_url(broker.url, mqtt5=False)
        else:
            raise NotConfigured("IOC_MQTT_URL is not set")
        if settings.database_url is not None:
            store = store_config(settings, settings.database_url.get_secret_value())
        elif embedded:
            cluster = PostgresCluster(settings.state_dir / "postgres")
            await asyncio.to_thread(cluster.start)
            stack.callback(cluster.stop)
            logger.info(
                "private PostgreSQL on 127.0.0.1:%d (data in %s)", cluster.port, cluster.data
            )
            store = store_config(settings, cluster.url)
        else:
            raise NotConfigured("IOC_DATABASE_URL is not set")
        if prepare:
            await prepare_store(store, province)
        yield Infrastructure(endpoint, province, Topics(settings.topic_prefix), store)
