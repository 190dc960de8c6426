"""Reading a rules file: checked whole, every problem named.

Shape first (pydantic, against :class:`RulesFile`), and, on the raw document so that they
are named even when the shape is wrong too: the cameras, access points, zones and districts
it names against the province, rules without an effect, duplicate ids, and every police
endpoint's secret against the environment.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from protocol import Province

from ._rules import Rules, RulesError, RulesFile


def check_secret(secret: str) -> str | None:
    """Why ``secret`` is not a usable Standard Webhooks secret, or None when it is."""
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return "is not base64 (expected whsec_ followed by base64)"
    if len(key) < 16:
        return f"decodes to {len(key)} bytes; use at least 16 (24-64 recommended)"
    return None


def _where(loc: Iterable[int | str], raw: Any) -> str:
    """A pydantic location as 'police.endpoints[0] (dispatch).url'."""
    out, node = "", raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id") or node.get("name"), str):
                out += f" ({node.get('id') or node.get('name')})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _items(raw: Any, *path: str) -> list[dict[str, Any]]:
    """The mappings in the list at ``path`` of a raw document (whatever else is wrong)."""
    node = raw
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return (
        [item if isinstance(item, dict) else {} for item in node or []]
        if isinstance(node, list)
        else []
    )


def _mapping(node: Any, key: str) -> dict[str, Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def _names(node: dict[str, Any], key: str) -> list[str]:
    value = node.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _label(node: dict[str, Any], key: str = "id") -> str:
    value = node.get(key)
    return f" ({value})" if isinstance(value, str) and value else ""


def _references(raw: Any, province: Province) -> list[str]:
    """Names the file uses that the province does not know, and rules without an effect.
    Works on the raw document, so these are named even when the file has problems of shape
    too."""
    problems: list[str] = []
    sources = {c.id for c in province.cameras} | {a.id for a in province.access_points}
    zones = {z.id for c in province.cameras for z in c.zones}
    districts = {d.id for d in province.districts} | {d.name for d in province.districts}

    def check(where: str, what: str, names: Iterable[str], known: set[str]) -> None:
        for name in names:
            if known and name not in known:
                problems.append(f"{where}: {what} {name!r} is not in the province")

    for i, rule in enumerate(_items(raw, "rules")):
        match = _mapping(rule, "match")
        here = f"rules[{i}]{_label(rule, 'name')}.match"
        if not {"severity", "auto_resolve_seconds", "clip"} & rule.keys():
            problems.append(
                f"rules[{i}]{_label(rule, 'name')}: a rule needs 'severity', "
                "'auto_resolve_seconds' or 'clip'"
            )
        check(here + ".sources", "source", _names(match, "sources"), sources)
        check(here + ".zones", "zone", _names(match, "zones"), zones)
        check(here + ".districts", "district", _names(match, "districts"), districts)
    for channel in ("mqtt", "police"):
        route = _mapping(_mapping(raw, "routes"), channel)
        check(f"routes.{channel}.districts", "district", _names(route, "districts"), districts)
    windows = _items(raw, "maintenance")
    for i, window in enumerate(windows):
        here = f"maintenance[{i}]{_label(window)}"
        check(here + ".sources", "source", _names(window, "sources"), sources)
        check(here + ".zones", "zone", _names(window, "zones"), zones)
    seen: set[str] = set()
    for i, endpoint in enumerate(_items(raw, "police", "endpoints")):
        here = f"police.endpoints[{i}]{_label(endpoint)}"
        endpoint_id = endpoint.get("id")
        if isinstance(endpoint_id, str):
            if endpoint_id in seen:
                problems.append(f"{here}.id: {endpoint_id!r} is used more than once")
            seen.add(endpoint_id)
        check(here + ".districts", "district", _names(endpoint, "districts"), districts)
    ids = [w.get("id") for w in windows if isinstance(w.get("id"), str)]
    problems += [
        f"maintenance: id {i!r} is used more than once"
        for i in sorted({str(i) for i in ids})
        if ids.count(i) > 1
    ]
    return problems


def _secrets(raw: Any, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    secrets: dict[str, str] = {}
    problems: list[str] = []
    for i, endpoint in enumerate(_items(raw, "police", "endpoints")):
        name = endpoint.get("secret_env")
        if not isinstance(name, str):
            continue  # the shape check names it
        here = f"police.endpoints[{i}]{_label(endpoint)}.secret_env"
        value = environ.get(name)
        if not value:
            problems.append(f"{here}: the environment variable {name} is not set")
            continue
        why = check_secret(value)
        if why:
            problems.append(f"{here}: the secret in {name} {why}")
        secrets[str(endpoint.get("id"))] = value
    return secrets, problems


def parse_rules(
    raw: Any,
    province: Province,
    source: str = "<rules>",
    environ: Mapping[str, str] | None = None,
) -> Rules:
    """Validate a parsed YAML document; raise :class:`RulesError` naming every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesError(source, ["the document must be a mapping"])
    secrets, secret_problems = _secrets(raw, os.environ if environ is None else environ)
    problems = _references(raw, province) + secret_problems
    try:
        spec = RulesFile.model_validate(raw)
    except ValidationError as exc:
        shape = [
            f"{_where(e['loc'], raw)}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise RulesError(source, shape + problems) from exc
    if problems:
        raise RulesError(source, problems)
    return Rules(spec, province, secrets, source)


def load_rules(
    path: str | Path, province: Province, environ: Mapping[str, str] | None = None
) -> Rules:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise RulesError(str(path), [f"not valid YAML: {exc}"]) from exc
    return parse_rules(raw, province, str(path), environ)
