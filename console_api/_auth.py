"""Users, roles and bearer tokens.

Passwords are hashed with Argon2id; a login returns a random token once and the store keeps
only its SHA-256, so a leaked database does not leak working tokens. A token ends at its
expiry, at logout, and when its user is disabled or given a new password.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg
from argon2 import PasswordHasher

from store import Connection

_hasher = PasswordHasher()
TOKEN_LIFETIME = timedelta(hours=12)
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,62}$"
"""The same rule as the users table's CHECK, so the API refuses what the store would."""


class Role(StrEnum):
    OPERATOR = "operator"
    POLICE = "police"
    PLANNER = "planner"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    role: Role
    expires_at: datetime | None = None
    """When the token that proved this identity stops working (None: not from a token)."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    display_name: str | None
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Hashed:
    """A password already hashed with Argon2id (by :class:`PasswordHashing`, off the event
    loop); a plain ``str`` given to :func:`add_user` or :func:`update_user` is hashed there,
    which suits the command line and tests, not a serving process."""

    argon2: str

    def __post_init__(self) -> None:
        if not self.argon2.startswith("$argon2"):
            raise ValueError("not an Argon2 hash")


def _hashed(password: str | Hashed) -> str:
    return password.argon2 if isinstance(password, Hashed) else _hasher.hash(password)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def add_user(
    conn: Connection,
    username: str,
    role: Role,
    password: str | Hashed,
    display_name: str | None = None,
) -> None:
    """Create the user, or replace its role and password (and enable it) if it exists."""
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO users (username, role, password_hash, display_name)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role,
                   password_hash = EXCLUDED.password_hash, disabled = false,
                   display_name = coalesce(EXCLUDED.display_name, users.display_name)""",
            username,
            role.value,
            _hashed(password),
            display_name,
        )
        # A new password ends every session opened with the old one.
        await revoke_tokens(conn, username)


async def password_hash_of(conn: Connection, username: str) -> str | None:
    """The stored Argon2 hash of an enabled user, else None (verify it with
    :class:`PasswordHashing`, off the event loop and without holding ``conn``)."""
    # A name no user can have (a NUL byte would not even reach the database) is unknown.
    if not re.fullmatch(USERNAME_PATTERN, username):
        return None
    found: str | None = await conn.fetchval(
        "SELECT password_hash FROM users WHERE username = $1 AND NOT disabled", username
    )
    return found


async def issue_token(
    conn: Connection, username: str, lifetime: timedelta = TOKEN_LIFETIME
) -> IssuedToken:
    """A new session for a user whose identity is already established (its password)."""
    token = secrets.token_urlsafe(32)
    async with conn.transaction():
        # Expired tokens are useless; dropping the user's old ones here keeps the table small.
        await conn.execute(
            "DELETE FROM api_tokens WHERE username = $1 AND expires_at <= now()", username
        )
        expires_at: datetime = await conn.fetchval(
            """INSERT INTO api_tokens (token_hash, username, expires_at)
               VALUES ($1, $2, now() + $3) RETURNING expires_at""",
            _token_hash(token),
            username,
            lifetime,
        )
    return IssuedToken(token, expires_at)


async def record_login(conn: Connection, username: str, address: str, outcome: str) -> None:
    """One line of the login audit: who tried, from where, and what came of it."""
    await conn.execute(
        "INSERT INTO login_audit (username, address, outcome) VALUES ($1, $2, $3)",
        # As typed, but storable and printable: control characters (NUL) become '?'.
        re.sub(r"[\x00-\x1f\x7f]", "?", username[:64]),
        address[:64],
        outcome,
    )


async def logout(conn: Connection, token: str) -> bool:
    """End the session of this token; False when it was not (or no longer) valid."""
    deleted = await conn.fetchval(
        "DELETE FROM api_tokens WHERE token_hash = $1 RETURNING true", _token_hash(token)
    )
    return bool(deleted)


async def revoke_tokens(conn: Connection, username: str) -> int:
    """End every session of the user; returns how many there were."""
    result = await conn.execute("DELETE FROM api_tokens WHERE username = $1", username)
    return int(result.split()[-1])


async def authenticate(conn: Connection, token: str) -> Principal | None:
    record = await conn.fetchrow(
        """SELECT u.username, u.role, t.expires_at FROM api_tokens t JOIN users u USING (username)
           WHERE t.token_hash = $1 AND t.expires_at > now() AND NOT u.disabled""",
        _token_hash(token),
    )
    if record is None:
        return None
    return Principal(record["username"], Role(record["role"]), record["expires_at"])


def _user(record: asyncpg.Record) -> User:
    return User(
        username=record["username"],
        role=Role(record["role"]),
        display_name=record["display_name"],
        disabled=record["disabled"],
        created_at=record["created_at"],
    )


_USER_COLUMNS = "username, role, display_name, disabled, created_at"


async def list_users(conn: Connection) -> list[User]:
    records = await conn.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
    return [_user(r) for r in records]


async def get_user(conn: Connection, username: str) -> User | None:
    record = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE username = $1", username)
    return None if record is None else _user(record)


async def update_user(
    conn: Connection,
    username: str,
    *,
    role: Role | None = None,
    disabled: bool | None = None,
    password: str | Hashed | None = None,
    display_name: str | None = None,
) -> User | None:
    """Change what is given; None when there is no such user. Disabling a user or setting a
    new password ends the user's sessions."""
    password_hash = None if password is None else _hashed(password)
    async with conn.transaction():
        record = await conn.fetchrow(
            f"""UPDATE users SET role = coalesce($2, role),
                    disabled = coalesce($3, disabled),
                    password_hash = coalesce($4, password_hash),
                    display_name = coalesce($5, display_name)
                WHERE username = $1 RETURNING {_USER_COLUMNS}""",
            username,
            None if role is None else role.value,
            disabled,
            password_hash,
            display_name,
        )
        if record is None:
            return None
        if disabled or password is not None:
            await revoke_tokens(conn, username)
    return _user(record)
