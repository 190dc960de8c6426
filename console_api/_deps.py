"""Request dependencies: the store pool, the settings and the principal with its role.

Every endpoint that is not public declares its roles with :class:`RoleGate`; the gate is a
dependency that answers 401 without a valid token and 403 for the other roles, and it
carries its roles so a test can walk the app's routes and check each one.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ._auth import Principal, Role, authenticate
from ._config import ConsoleConfig

_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/token")

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or the token is unknown, expired or revoked"},
    403: {"description": "The token's role may not use this endpoint"},
}


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def read_pool_of(request: Request) -> asyncpg.Pool:
    """Planners' history and forecast reads: a replica's pool when the app has one
    (IOC_DATABASE_READ_URL), else the primary's. A replica lags the primary by what it has
    not yet replayed (docs/production.md says how much)."""
    pool: asyncpg.Pool = request.app.state.read_pool
    return pool


def config_of(request: Request) -> ConsoleConfig:
    config: ConsoleConfig = request.app.state.config
    return config


Pool = Annotated[asyncpg.Pool, Depends(pool_of)]
ReadPool = Annotated[asyncpg.Pool, Depends(read_pool_of)]
Config = Annotated[ConsoleConfig, Depends(config_of)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def principal(pool: Pool, credentials: Credentials) -> Principal:
    if credentials is None:
        raise _unauthorised("a bearer token is required")
    if len(credentials.credentials) > 256:
        raise _unauthorised("the token is unknown or expired")
    async with pool.acquire() as conn:
        who = await authenticate(conn, credentials.credentials)
    if who is None:
        raise _unauthorised("the token is unknown or expired")
    return who


class RoleGate:
    """A dependency that admits only ``roles`` (403 for the others, 401 without a token)."""

    def __init__(self, *roles: Role) -> None:
        if not roles:
            raise ValueError("a gate needs at least one role")
        self.roles = frozenset(roles)

    async def __call__(self, who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in self.roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {who.role} may not do this")
        return who

    def __repr__(self) -> str:
        return f"RoleGate({', '.join(sorted(self.roles))})"


def require(*roles: Role) -> RoleGate:
    return RoleGate(*roles)


# The roles of the console, by what they may see (DESIGN.md "Who uses it").
LIVE = require(Role.OPERATOR, Role.ADMIN)
"""The live console: acting on alerts, live state of cameras and access points."""
INCIDENTS = require(Role.OPERATOR, Role.POLICE, Role.ADMIN)
"""Alerts to read; police see only incidents routed to them (see ``_scope``)."""
CAMERAS = require(Role.OPERATOR, Role.POLICE, Role.PLANNER, Role.ADMIN)
"""Camera registry without Wi-Fi data: every role."""
WIFI = require(Role.OPERATOR, Role.PLANNER, Role.ADMIN)
"""Wi-Fi access points and their data: never police."""
HISTORY = require(Role.PLANNER, Role.OPERATOR, Role.ADMIN)
"""Traffic history (Wi-Fi history also needs WIFI, which these roles all have)."""
ADMIN = require(Role.ADMIN)
"""Registry detail and users."""
ANYONE = require(*Role)
"""Any signed-in user (who am I, logout)."""

Live = Annotated[Principal, Depends(LIVE)]
Incidents = Annotated[Principal, Depends(INCIDENTS)]
Cameras = Annotated[Principal, Depends(CAMERAS)]
Wifi = Annotated[Principal, Depends(WIFI)]
History = Annotated[Principal, Depends(HISTORY)]
Admin = Annotated[Principal, Depends(ADMIN)]
Anyone = Annotated[Principal, Depends(ANYONE)]
