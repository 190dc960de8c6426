"""The spec's two formats: JSON arrays/objects and XML documents with the same fields.
Text is always data: JSON-encoded or XML-escaped, never markup."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Response
from lxml import etree

JSON = "application/json; charset=utf-8"
XML = "text/xml; charset=utf-8"
FORMATS = ("json", "xml")
_ITEM = {
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "notes": "note",
}
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def w3c(moment: datetime) -> str:
    """W3C date-time with the offset, seconds precision (the spec's format)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return w3c(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return w3c(value)
    # XML 1.0 cannot carry most control characters: drop them from the rendering only.
    return str(value).translate(_CONTROL)


def _element(parent: etree._Element, tag: str, value: Any) -> None:
    node = etree.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, item in value.items():
            _element(node, key, item)
    elif isinstance(value, list):
        for item in value:
            _element(node, _ITEM.get(tag, "item"), item)
    else:
        node.text = _text(value)


def render(fmt: str, root: str, item: str | None, body: Any, status: int = 200) -> Response:
    """``body`` (a list of ``item`` objects, or one object) as JSON or as XML under ``root``.
    ``item`` None: ``body`` is one object whose fields are ``root``'s children."""
    headers = {"X-Content-Type-Options": "nosniff"}
    if fmt == "json":
        return Response(
            json.dumps(_plain(body), ensure_ascii=False),
            status_code=status,
            media_type=JSON,
            headers=headers,
        )
    document = etree.Element(root)
    if item is None:
        for key, value in body.items():
            _element(document, key, value)
    else:
        for entry in body:
            _element(document, item, entry)
    # The spec wants the declaration exactly so: double quotes, "UTF-8".
    text = _DECLARATION + etree.tostring(document, encoding="UTF-8")
    return Response(text, status_code=status, media_type=XML, headers=headers)


def errors(fmt: str, status: int, problems: list[tuple[int, str]]) -> Response:
    """The spec's error array: each with the HTTP code and a description."""
    body = [{"code": code, "description": text} for code, text in problems]
    return render(fmt if fmt in FORMATS else "json", "errors", "error", body, status)
