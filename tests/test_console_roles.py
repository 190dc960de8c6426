"""Every endpoint checks the role: walk the app's routes, so a new endpoint cannot escape.

For each gated route and method: no token and a wrong token get 401, each role outside the
gate gets 403, each role inside it gets past the gate (anything but 401/403)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import fastapi.routing
import pytest
from console_support import console, seed_registry
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from console_api import PUBLIC_PATHS, Role, RoleGate, create_app
from store import StoreConfig

pytestmark = pytest.mark.postgres
PLACEHOLDERS = {
    "alert_id": str(uuid.uuid4()),
    "incident_id": str(uuid.uuid4()),
    "camera_id": "cam-a",
    "username": "someone",
    "fmt": "json",
    "service_request_id": "1",
}


def _gates(dependant: Dependant) -> Iterator[RoleGate]:
    for sub in dependant.dependencies:
        if isinstance(sub.call, RoleGate):
            yield sub.call
        yield from _gates(sub)


def _routes(app: FastAPI) -> list[Any]:
    """Every route with its effective path. FastAPI 0.16x keeps included routers as nodes of
    their own in ``app.routes``; ``iter_route_contexts`` is what its OpenAPI generator walks."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:  # older FastAPI: included routes are copied into app.routes
        return [_Flat(r) for r in app.routes]
    return list(iterate(app.routes))


class _Flat:
    def __init__(self, route: Any) -> None:
        self.original_route = route
        self.path = getattr(route, "path", None)
        self.methods = getattr(route, "methods", None)
        self.dependant = getattr(route, "dependant", None)


def gated_routes(app: FastAPI) -> list[tuple[str, str, frozenset[Role] | None]]:
    """(method, path, roles) for every API route; roles None when the route has no gate."""
    found: list[tuple[str, str, frozenset[Role] | None]] = []
    for route in _routes(app):
        if not isinstance(route.original_route, APIRoute):
            continue
        gates = list(_gates(route.dependant))
        roles = frozenset.intersection(*(g.roles for g in gates)) if gates else None
        found.extend((method, route.path, roles) for method in sorted(route.methods))
    return found


def _app() -> FastAPI:
    return create_app(StoreConfig(url="postgresql://unused/never-connected"))


def test_every_route_is_either_gated_or_listed_as_public() -> None:
    routes = gated_routes(_app())
    ungated = {f"{path}:{method}" for method, path, roles in routes if roles is None}
    assert ungated == PUBLIC_PATHS
    assert len(routes) > 25  # the walk really sees the API


def test_roles_match_the_design() -> None:
    """Police never see Wi-Fi; planners only read; only admins manage users."""
    roles = {(m, p): r for m, p, r in gated_routes(_app()) if r is not None}
    for (method, path), allowed in roles.items():
        if "wifi" in path or "access-points" in path or "summary" in path:
            assert Role.POLICE not in allowed, path
        if method != "GET" and not path.startswith("/api/v1/auth"):
            assert Role.PLANNER not in allowed, path
            assert Role.POLICE not in allowed, path
        if path.startswith("/api/v1/users") or path == "/api/v1/registry":
            assert allowed == {Role.ADMIN}, path
    assert roles[("GET", "/api/v1/history/traffic")] >= {Role.PLANNER}
    assert roles[("POST", "/api/v1/alerts/{alert_id}/acknowledge")] == {
        Role.OPERATOR,
        Role.ADMIN,
    }


async def test_unauthenticated_401_forbidden_403_allowed_pass(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    async with console(database, db) as c, contextlib.AsyncExitStack() as stack:
        anonymous = await stack.enter_async_context(c.http())
        stranger = await stack.enter_async_context(c.http("not-a-real-token"))
        as_role = {
            role: await stack.enter_async_context(c.http(await c.user(role))) for role in Role
        }
        checked = 0
        for method, template, allowed in gated_routes(c.app):
            if allowed is None:
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], template)
            response = await anonymous.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert (await stranger.request(method, path)).status_code == 401, (method, path)
            for role in Role:
                if (method, template) == ("DELETE", "/api/v1/auth/token"):
                    # Logging out ends the token: use one of its own.
                    async with c.http(await c.login(f"{role.value}-1")) as http:
                        status = (await http.request(method, path)).status_code
                else:
                    status = (await as_role[role].request(method, path)).status_code
                if role in allowed:
                    assert status not in (401, 403), (method, path, role, status)
                else:
                    assert status == 403, (method, path, role, status)
                checked += 1
        assert checked > 100
