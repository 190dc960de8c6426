"""Bounds on what a request may ask: body size and time ranges, refused with the field named.

A 422 from here has the same shape as FastAPI's own validation errors (``detail`` is a list
of ``{"loc": [...], "msg": ..., "type": ...}``), so clients handle one format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import HTTPException, status
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

IDENTIFIER = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Ids of the registry (districts, cameras, sites, access points): the protocol's rule."""
Ident = Annotated[str, Field(pattern=IDENTIFIER)]
Ids = list[Ident] | None
"""A repeatable query parameter of ids; None when absent."""
_PRINTABLE = r"\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff"
TEXT = rf"^[\t\n\r{_PRINTABLE}]*$"
"""Free text (notes): the one rule for text that can reach XML (CAP), CSV or the page.
What XML 1.0 can carry, less the C1 controls: no control character but tab and newlines,
no U+FFFE/U+FFFF. A vertical tab in a note is a 422 here, not a 500 in lxml later."""
LINE = rf"^[{_PRINTABLE}]*$"
"""One line of text (names, assignees, roads): :data:`TEXT` without tab and newlines."""


def invalid(field: str, message: str, where: str = "query") -> HTTPException:
    """A 422 naming the offending field."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": [where, field], "msg": message, "type": "value_error"}],
    )


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: datetime
    until: datetime

    @property
    def span(self) -> timedelta:
        return self.until - self.since


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Times outside these hold no data; refusing them keeps date arithmetic from overflowing."""


def _aware(field: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field, "must carry a UTC offset, e.g. 2025-01-31T08:00:00+07:00")
    try:
        utc: datetime | None = value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise invalid(field, f"must be from {EARLIEST.year} up to {LATEST.year}")
    return utc


def time_range(
    since: datetime | None,
    until: datetime | None,
    *,
    default_span: timedelta,
    max_span: timedelta,
    now: datetime | None = None,
) -> TimeRange:
    """Validate ``[since, until)``: both aware, in order, at most ``max_span`` apart; a missing
    end defaults to now, a missing start to ``default_span`` before the end."""
    end = _aware("until", until) if until is not None else (now or datetime.now(UTC))
    start = _aware("since", since) if since is not None else end - default_span
    if start >= end:
        raise invalid("since", "must be earlier than until")
    if end - start > max_span:
        raise invalid(
            "since",
            f"the range may span at most {_describe(max_span)}; got {_describe(end - start)}",
        )
    return TimeRange(start, end)


def _describe(span: timedelta) -> str:
    if span >= timedelta(days=2):
        return f"{span / timedelta(days=1):g} days"
    if span >= timedelta(hours=2):
        return f"{span / timedelta(hours=1):g} hours"
    return f"{span / timedelta(minutes=1):g} minutes"


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before the app reads them; a body
    without Content-Length is counted as it streams and cut off at the limit."""

    def __init__(self, app: ASGIApp, limit: int, larger: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.limit = limit
        self.larger = tuple(larger)
        """(path prefix, limit) pairs for the few routes that take more (clip uploads)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = next((n for prefix, n in self.larger if path.startswith(prefix)), self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises an HTTPException met while reading the body.
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _too_large_detail(limit))
            return message

        await self.app(scope, counted, send)


def _too_large_detail(limit: int) -> list[dict[str, Any]]:
    return [
        {
            "loc": ["body"],
            "msg": f"the request body may have at most {limit} bytes",
            "type": "value_error",
        }
    ]


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _too_large_detail(limit)}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
