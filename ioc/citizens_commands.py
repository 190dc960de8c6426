"""``ioc open311 key ...``: client applications' API keys for posting citizen reports."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from citizens import KeyNameError, add_key, list_keys, revoke_key
from store import Connection, connect

from .runtime import NotConfigured, store_config
from .settings import Settings

T = TypeVar("T")


def _with_store(settings: Settings, work: Callable[[Connection], Awaitable[T]]) -> T:
    if settings.database_url is None:
        raise NotConfigured("IOC_DATABASE_URL is not set")
    store = store_config(settings, settings.database_url.get_secret_value())

    async def run() -> T:
        conn = await connect(store)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def add_open311_key(settings: Settings, name: str) -> None:
    """Print the new key once: only its hash is stored."""
    try:
        key = _with_store(settings, lambda conn: add_key(conn, name))
    except KeyNameError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(key)


def revoke_open311_key(settings: Settings, name: str) -> None:
    if not _with_store(settings, lambda conn: revoke_key(conn, name)):
        typer.echo(f"error: no active key named {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"key {name} revoked")


def show_open311_keys(settings: Settings) -> None:
    for key in _with_store(settings, list_keys):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        typer.echo(f"{key.name}\t{key.created_at:%Y-%m-%d %H:%M}\t{state}")
