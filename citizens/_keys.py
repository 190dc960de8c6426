"""API keys of client applications: issued once by an admin, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from store import Connection

KEY_NAME = r"^[a-z0-9][a-z0-9._-]{1,62}$"


class KeyNameError(ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"key name {name!r} must match {KEY_NAME}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(key: str) -> bytes:
    # Keys are 256 random bits: a plain SHA-256 cannot be reversed or guessed.
    return hashlib.sha256(key.encode()).digest()


async def add_key(conn: Connection, name: str) -> str:
    """A new key for the client application ``name`` (replacing its old one); shown once."""
    if not re.fullmatch(KEY_NAME, name):
        raise KeyNameError(name)
    key = secrets.token_urlsafe(32)
    await conn.execute(
        """INSERT INTO open311_keys (name, key_hash) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET key_hash = EXCLUDED.key_hash,
               created_at = now(), revoked_at = NULL""",
        name,
        _hash(key),
    )
    return key


async def revoke_key(conn: Connection, name: str) -> bool:
    """Stop the key of ``name`` working; False when there is no such (unrevoked) key."""
    done = await conn.fetchval(
        """UPDATE open311_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
           RETURNING true""",
        name,
    )
    return bool(done)


async def list_keys(conn: Connection) -> list[ApiKey]:
    records = await conn.fetch(
        "SELECT name, created_at, revoked_at FROM open311_keys ORDER BY name"
    )
    return [ApiKey(r["name"], r["created_at"], r["revoked_at"]) for r in records]


async def key_owner(conn: Connection, key: str) -> str | None:
    """The client application a valid, unrevoked key belongs to."""
    if not key or len(key) > 200:
        return None
    name: str | None = await conn.fetchval(
        "SELECT name FROM open311_keys WHERE key_hash = $1 AND revoked_at IS NULL", _hash(key)
    )
    return name
