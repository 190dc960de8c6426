"""Who may see the API's own internals: ``/metrics``, ``/docs``, ``/redoc`` and
``/openapi.json``. Open in the demo; in production admin-only (a bearer token of an
administrator) or off (404), as ``ConsoleConfig.internals`` says."""

from __future__ import annotations

import json
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from ._auth import Role, authenticate

Exposure = Literal["open", "admin", "off"]
INTERNAL_PATHS = frozenset(
    {"/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)


class InternalsGate:
    def __init__(self, app: ASGIApp, exposure: Exposure) -> None:
        self.app = app
        self.exposure = exposure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.exposure == "open"
            or scope["type"] != "http"
            or scope["path"] not in INTERNAL_PATHS
        ):
            await self.app(scope, receive, send)
            return
        if self.exposure == "admin" and await self._is_admin(scope):
            await self.app(scope, receive, send)
            return
        status, detail = (
            (404, "Not Found") if self.exposure == "off" else (403, "administrators only")
        )
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _is_admin(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > 256:
            return False
        async with scope["app"].state.pool.acquire() as conn:
            who = await authenticate(conn, token)
        return who is not None and who.role is Role.ADMIN
