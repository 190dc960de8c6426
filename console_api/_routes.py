"""REST endpoints."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Form, HTTPException, status
from fastapi.responses import Response

from alerts import open_alerts

from ._auth import Principal, Role, login
from ._deps import Pool, require

router = APIRouter()
_json = msgspec.json.Encoder()


def json_response(value: Any) -> Response:
    """Serialise with msgspec (alerts are msgspec structs), as application/json."""
    return Response(_json.encode(value), media_type="application/json")


@router.post("/api/v1/auth/token", tags=["auth"])
async def issue_token(
    pool: Pool,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> dict[str, str]:
    async with pool.acquire() as conn:
        token = await login(conn, username, password)
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    return {"access_token": token, "token_type": "bearer"}


@router.get("/api/v1/alerts", tags=["alerts"])
async def list_open_alerts(
    pool: Pool, who: Annotated[Principal, Depends(require(Role.OPERATOR, Role.ADMIN))]
) -> Response:
    async with pool.acquire() as conn:
        return json_response(await open_alerts(conn))


@router.get("/healthz", tags=["health"])
async def health(pool: Pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return {"status": "ok"}
