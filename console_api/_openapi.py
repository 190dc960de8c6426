"""JSON responses encoded by msgspec, documented in the OpenAPI schema.

The alerts package hands out msgspec structs; encoding them with msgspec is fast and exact.
FastAPI documents only pydantic models, so each endpoint that answers with msgspec data
names its type with :func:`documented`, and :func:`install` adds those types' JSON Schemas
to the app's OpenAPI components.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response

_REF = "#/components/schemas/{name}"
_json = msgspec.json.Encoder()
_types: list[Any] = []
Responses = dict[int | str, dict[str, Any]]
"""The shape of FastAPI's ``responses=``."""


def json_response(
    value: Any, status_code: int = 200, media_type: str = "application/json"
) -> Response:
    return Response(_json.encode(value), status_code=status_code, media_type=media_type)


def documented(tp: Any, media_type: str = "application/json", description: str = "OK") -> Responses:
    """``responses=`` for a route answering with ``tp`` (a msgspec type) as JSON."""
    (schema,), _ = msgspec.json.schema_components([tp], ref_template=_REF)
    _types.append(tp)
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the components of every documented msgspec type."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _, components = msgspec.json.schema_components(_types, ref_template=_REF)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
