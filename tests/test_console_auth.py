"""Login, token expiry, logout and revocation; users managed by administrators; bounds on
request bodies."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from console_support import PASSWORD, console

from console_api import ConsoleConfig, Role
from store import StoreConfig

pytestmark = pytest.mark.postgres


async def test_login_me_expiry_and_logout(database: StoreConfig, db: asyncpg.Connection) -> None:
    config = ConsoleConfig(token_lifetime=timedelta(hours=8))
    async with console(database, db, config) as c:
        token = await c.user(Role.OPERATOR)
        async with c.http() as http:
            wrong = await http.post(
                "/api/v1/auth/token", data={"username": "operator-1", "password": "nope"}
            )
            nobody = await http.post(
                "/api/v1/auth/token", data={"username": "ghost", "password": PASSWORD}
            )
            impossible = await http.post(
                "/api/v1/auth/token", data={"username": "op\u0000", "password": PASSWORD}
            )
            issued = await http.post(
                "/api/v1/auth/token", data={"username": "operator-1", "password": PASSWORD}
            )
        assert wrong.status_code == nobody.status_code == impossible.status_code == 401
        assert wrong.json() == nobody.json()  # no hint which of the two was wrong
        expires = datetime.fromisoformat(issued.json()["expires_at"])
        assert timedelta(hours=7, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=8)
        assert issued.json()["token_type"] == "bearer"
        second = issued.json()["access_token"]
        async with c.http(token) as http:
            me = (await http.get("/api/v1/me")).json()
            assert (me["username"], me["role"]) == ("operator-1", "operator")
            assert (await http.delete("/api/v1/auth/token")).status_code == 204
            assert (await http.get("/api/v1/me")).status_code == 401
        async with c.http(second) as http:  # the other session goes on
            assert (await http.get("/api/v1/me")).status_code == 200
            # Only a hash is stored; once past its expiry the token is refused.
            stored = await db.fetch(
                "SELECT token_hash FROM api_tokens WHERE username = $1", "operator-1"
            )
            assert [r["token_hash"] for r in stored] == [hashlib.sha256(second.encode()).digest()]
            await db.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
            response = await http.get("/api/v1/me")
            assert response.status_code == 401
            assert response.json()["detail"] == "the token is unknown or expired"


async def test_administrators_manage_users_and_sessions(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    async with console(database, db) as c:
        admin = c.http(await c.user(Role.ADMIN))
        async with admin:
            created = await admin.put(
                "/api/v1/users/nguyen.van.a",
                json={"role": "planner", "password": "a long passphrase", "display_name": "A"},
            )
            assert created.status_code == 200, created.text
            assert created.json()["role"] == "planner"
            planner = await _login(c.url, "nguyen.van.a", "a long passphrase")
            listed = (await admin.get("/api/v1/users")).json()
            assert [u["username"] for u in listed] == ["admin-1", "nguyen.van.a"]
            assert "password" not in str(listed)

            # A new role takes effect at once; disabling ends every session.
            await admin.patch("/api/v1/users/nguyen.van.a", json={"role": "operator"})
            async with c.http(planner) as http:
                assert (await http.get("/api/v1/me")).json()["role"] == "operator"
                changed = await admin.patch("/api/v1/users/nguyen.van.a", json={"disabled": True})
                assert changed.json()["disabled"] is True
                assert (await http.get("/api/v1/me")).status_code == 401
            with pytest.raises(AssertionError):
                await _login(c.url, "nguyen.van.a", "a long passphrase")

            # Re-enabled with a new password; revoking sessions ends them.
            await admin.patch(
                "/api/v1/users/nguyen.van.a",
                json={"disabled": False, "password": "another passphrase"},
            )
            again = await _login(c.url, "nguyen.van.a", "another passphrase")
            revoked = await admin.delete("/api/v1/users/nguyen.van.a/tokens")
            assert revoked.json() == {"revoked": 1}
            async with c.http(again) as http:
                assert (await http.get("/api/v1/me")).status_code == 401

            # What an administrator may not do, and bad input named by field.
            assert (
                await admin.patch("/api/v1/users/admin-1", json={"disabled": True})
            ).status_code == 409
            assert (
                await admin.put(
                    "/api/v1/users/admin-1", json={"role": "planner", "password": "x" * 12}
                )
            ).status_code == 409
            assert (
                await admin.patch("/api/v1/users/ghost", json={"role": "police"})
            ).status_code == 404
            short = await admin.put(
                "/api/v1/users/someone", json={"role": "police", "password": "short"}
            )
            assert short.status_code == 422
            assert short.json()["detail"][0]["loc"] == ["body", "password"]
            bad_name = await admin.put(
                "/api/v1/users/Bad Name", json={"role": "police", "password": "x" * 12}
            )
            assert bad_name.status_code == 422
            assert bad_name.json()["detail"][0]["loc"] == ["path", "username"]
            extra = await admin.patch("/api/v1/users/someone", json={"is_root": True})
            assert extra.status_code == 422
            assert extra.json()["detail"][0]["loc"] == ["body", "is_root"]


async def _login(url: str, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 1024):
        yield b"x" * 1024


async def test_request_bodies_are_bounded(database: StoreConfig, db: asyncpg.Connection) -> None:
    async with console(database, db, ConsoleConfig(max_body_bytes=4096)) as c:
        http = await c.as_role(Role.OPERATOR)
        async with http:
            declared = await http.post(
                "/api/v1/alerts/00000000-0000-0000-0000-000000000000/resolve",
                content=b"{" + b" " * 8000 + b"}",
                headers={"content-type": "application/json"},
            )
            assert declared.status_code == 413
            assert declared.json()["detail"][0]["loc"] == ["body"]
            streamed = await http.post(
                "/api/v1/alerts/00000000-0000-0000-0000-000000000000/resolve",
                content=_chunks(16 * 1024),
                headers={"content-type": "application/json"},
            )
            assert streamed.status_code == 413
            small = await http.post(
                "/api/v1/alerts/00000000-0000-0000-0000-000000000000/resolve",
                json={"note": "fine"},
            )
            assert small.status_code == 404
