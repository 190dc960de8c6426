"""Where the services find their broker and database: configured servers in production,
or, for the demo, an embedded broker and a private PostgreSQL cluster under the state folder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from protocol import MqttEndpoint, Province, Topics, load_province
from store import ALL_MIGRATIONS, StoreConfig, connect, migrate, sync_registry

from .embedded import EmbeddedBroker
from .servers import PostgresCluster
from .settings import Settings

logger = logging.getLogger(__name__)


class NotConfigured(RuntimeError):
    """A production service started without the URL it needs."""


@dataclass(frozen=True, slots=True)
class Infrastructure:
    endpoint: MqttEndpoint
    store: StoreConfig
    province: Province
    topics: Topics


def store_config(settings: Settings, url: str) -> StoreConfig:
    return StoreConfig(
        url=url,
        statement_cache_size=settings.db_statement_cache_size,
        use_copy=settings.db_use_copy,
    )


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
            endpoint = MqttEndpoint.from_url(
                settings.mqtt_url.get_secret_value(), mqtt5=settings.mqtt_v5
            )
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
        yield Infrastructure(endpoint, store, province, Topics(settings.topic_prefix))
