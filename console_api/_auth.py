"""Users, roles and bearer tokens.

Passwords are hashed with Argon2id; a login returns a random token once and the store keeps
only its SHA-256, so a leaked database does not leak working tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from store import Connection

_hasher = PasswordHasher()
TOKEN_LIFETIME = timedelta(hours=12)


class Role(StrEnum):
    OPERATOR = "operator"
    POLICE = "police"
    PLANNER = "planner"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    role: Role


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def add_user(conn: Connection, username: str, role: Role, password: str) -> None:
    await conn.execute(
        """INSERT INTO users (username, role, password_hash) VALUES ($1, $2, $3)
           ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role,
               password_hash = EXCLUDED.password_hash, disabled = false""",
        username,
        role.value,
        _hasher.hash(password),
    )


async def login(conn: Connection, username: str, password: str) -> str | None:
    """A new token for valid credentials, else None."""
    record = await conn.fetchrow(
        "SELECT password_hash FROM users WHERE username = $1 AND NOT disabled", username
    )
    if record is None:
        _hasher.hash(password)  # same work either way: no user enumeration by timing
        return None
    try:
        _hasher.verify(record["password_hash"], password)
    except VerificationError:
        return None
    token = secrets.token_urlsafe(32)
    await conn.execute(
        """INSERT INTO api_tokens (token_hash, username, expires_at)
           VALUES ($1, $2, now() + $3)""",
        _token_hash(token),
        username,
        TOKEN_LIFETIME,
    )
    return token


async def authenticate(conn: Connection, token: str) -> Principal | None:
    record = await conn.fetchrow(
        """SELECT u.username, u.role FROM api_tokens t JOIN users u USING (username)
           WHERE t.token_hash = $1 AND t.expires_at > now() AND NOT u.disabled""",
        _token_hash(token),
    )
    return Principal(record["username"], Role(record["role"])) if record else None
