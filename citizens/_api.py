"""Open311 GeoReport v2 under ``/open311/v2/``, in JSON and XML, with the spec's errors.

Routes are public by the spec (reading) or carry an ``api_key`` (posting); the hotline's
routes take the console's operator and admin gates, given by the app that mounts them.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from starlette.datastructures import FormData, UploadFile

from ._caller import caller_key, seal, unseal
from ._catalogue import Attribute, Catalogue, Datatype, Service, load_catalogue
from ._intake import NewReport, accept_report
from ._keys import key_owner
from ._limits import RateLimited, SlidingWindow
from ._render import FORMATS, errors, render, w3c
from ._reports import Query, find_requests, request_by_token, request_notes, service_request
from ._sweep import ReportSweep

PREFIX = "/open311/v2"
SPEC = "http://wiki.open311.org/GeoReport_v2"
MAX_DESCRIPTION = 4000
_ATTRIBUTE = re.compile(r"^attribute\[([^\]]{1,64})\](\[\])?$")
_IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
_FORM_BODY = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string"}
                        for name in (
                            "api_key",
                            "service_code",
                            "lat",
                            "long",
                            "address_string",
                            "address_id",
                            "email",
                            "device_id",
                            "account_id",
                            "first_name",
                            "last_name",
                            "phone",
                            "description",
                            "media_url",
                        )
                    },
                }
            }
        }
    }
}


class Open311Error(Exception):
    def __init__(
        self, status: int, problems: list[tuple[int, str]], headers: dict[str, str] | None = None
    ) -> None:
        self.status, self.problems, self.headers = status, problems, headers or {}
        super().__init__("; ".join(p for _, p in problems))


def _bad(description: str) -> Open311Error:
    return Open311Error(400, [(400, description)])


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, [(404, f"unknown format {fmt!r}: use json or xml")])
    return fmt


def _answer(fmt: str, error: Open311Error) -> Response:
    response = errors(fmt, error.status, error.problems)
    response.headers.update(error.headers)
    return response


def _text(form: FormData, name: str, limit: int, problems: list[tuple[int, str]]) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append((400, f"{name}: must be text"))
        return None
    if "\x00" in value:
        problems.append((400, f"{name}: must not contain NUL characters"))
        return None
    if len(value) > limit:
        problems.append((400, f"{name}: at most {limit} characters"))
        return None
    return value


def _coordinate(
    form: FormData, name: str, bound: float, problems: list[tuple[int, str]]
) -> float | None:
    text = _text(form, name, 40, problems)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append((400, f"{name}: {text!r} is not a number"))
        return None
    if not math.isfinite(value) or abs(value) > bound:
        problems.append((400, f"{name}: must be a number between -{bound:g} and {bound:g}"))
        return None
    return value


def _attributes(
    form: FormData, service: Service, problems: list[tuple[int, str]]
) -> dict[str, Any]:
    given: dict[str, list[str]] = {}
    for key in form:
        if match := _ATTRIBUTE.match(key):
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            given.setdefault(match.group(1), []).extend(values)
    known = {a.code: a for a in service.attributes}
    out: dict[str, Any] = {}
    for code in given:
        if code not in known:
            problems.append((400, f"attribute[{code}]: not an attribute of {service.code}"))
    for attribute in service.attributes:
        values = [v for v in given.get(attribute.code, []) if v != ""]
        name = f"attribute[{attribute.code}]"
        if not values:
            if attribute.required and attribute.variable:
                problems.append((400, f"{name}: required for {service.code}"))
            continue
        if any(len(v) > 1000 or "\x00" in v for v in values):
            problems.append((400, f"{name}: at most 1000 characters, no NUL"))
            continue
        value = _attribute_value(attribute, values, name, problems)
        if value is not None:
            out[attribute.code] = value
    return out


def _attribute_value(
    attribute: Attribute, values: list[str], name: str, problems: list[tuple[int, str]]
) -> Any:
    """The attribute's value from its form values, or None with a problem noted."""
    keys = {v.key for v in attribute.values}
    value: Any = values[0]
    problem = None
    if attribute.datatype in (Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST):
        bad = [v for v in values if v not in keys]
        if bad:
            problem = f"{bad[0]!r} is not one of {sorted(keys)}"
        elif attribute.datatype is Datatype.MULTIVALUELIST:
            value = values
        elif len(values) > 1:
            problem = "takes one value"
    elif attribute.datatype is Datatype.NUMBER:
        try:
            value = float(values[0])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            problem = f"{values[0]!r} is not a number"
    elif attribute.datatype is Datatype.DATETIME:
        try:
            datetime.fromisoformat(values[0])
        except ValueError:
            problem = f"{values[0]!r} is not an ISO 8601 datetime"
    if problem is not None:
        problems.append((400, f"{name}: {problem}"))
        return None
    return value


def _image_type(body: bytes) -> str | None:
    for magic, content_type in _IMAGE_TYPES.items():
        if body.startswith(magic):
            return content_type
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    return None


def _definition(service: Service) -> dict[str, Any]:
    return {
        "service_code": service.code,
        "attributes": [
            {
                "variable": a.variable,
                "code": a.code,
                "datatype": str(a.datatype),
                "required": a.required,
                "datatype_description": a.datatype_description,
                "order": i + 1,
                "description": a.description,
                "values": [{"key": v.key, "name": v.name} for v in a.values],
            }
            for i, a in enumerate(service.attributes)
        ],
    }


def _service(service: Service) -> dict[str, Any]:
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description,
        "metadata": bool(service.attributes),
        "type": "realtime",
        "keywords": ", ".join(service.keywords),  # one text, as the spec has it
        "group": service.group,
    }


class Open311:
    """The API's state: the catalogue, the posting limits, the caller-number key."""

    def __init__(self, catalogue: Catalogue, key: bytes | None) -> None:
        self.catalogue = catalogue
        self.caller_key = key
        limits = catalogue.limits
        self.per_key = SlidingWindow("api_key", limits.per_key_per_minute)
        self.per_device = SlidingWindow("device", limits.per_device_per_minute)

    async def district(self, conn: Any, lat: float, lon: float) -> str | None:
        rows = await conn.fetch("SELECT id, lat, lon FROM districts")
        best, best_km = None, math.inf
        for row in rows:
            dy = (row["lat"] - lat) * 111.32
            dx = (row["lon"] - lon) * 111.32 * math.cos(math.radians(lat))
            km = math.hypot(dx, dy)
            if km < best_km:
                best, best_km = row["id"], km
        return best if best_km <= self.catalogue.limits.max_district_km else None

    async def locate_address(self, conn: Any, address: str) -> tuple[float, float] | None:
        """An address with no coordinates is placed at the centre of the district it names."""
        folded = address.casefold()
        for row in await conn.fetch("SELECT id, name, lat, lon FROM districts ORDER BY id"):
            bare = re.sub(r"^(tp|tx|h)\.\s*", "", row["name"].casefold())
            if row["id"] in folded or bare in folded:
                return row["lat"], row["lon"]
        return None

    async def store_photo(self, conn: Any, upload: UploadFile) -> uuid.UUID:
        limit = self.catalogue.limits.max_photo_bytes
        body = await upload.read(limit + 1)
        if len(body) > limit:
            raise Open311Error(413, [(413, f"media: a photo may be at most {limit} bytes")])
        content_type = _image_type(body)
        if content_type is None:
            raise _bad("media: must be a JPEG, PNG or WebP image")
        media_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO open311_media (content_type, body) VALUES ($1, $2) RETURNING id",
            content_type,
            body,
        )
        return media_id

    def limit(self, key_name: str | None, device: str) -> None:
        try:
            if key_name is not None:
                self.per_key.check(key_name)
            self.per_device.check(device)
        except RateLimited as exc:
            raise Open311Error(
                429, [(429, str(exc))], {"Retry-After": str(exc.retry_after)}
            ) from exc

    async def report(
        self, conn: Any, form: FormData, *, channel: str, key_name: str | None
    ) -> NewReport:
        problems: list[tuple[int, str]] = []
        code = _text(form, "service_code", 64, problems)
        service = self.catalogue.service(code) if code else None
        if code is None:
            problems.append((400, "service_code: required"))
        elif service is None:
            problems.append((400, f"service_code: {code!r} is not a service (see services)"))
        lat = _coordinate(form, "lat", 90, problems)
        lon = _coordinate(form, "long", 180, problems)
        address = _text(form, "address_string", 500, problems)
        description = _text(form, "description", MAX_DESCRIPTION, problems)
        media_url = _text(form, "media_url", 2000, problems)
        if media_url and not re.match(r"^https?://[^\s]+$", media_url):
            problems.append((400, "media_url: must be an http(s) URL"))
        email = _text(form, "email", 254, problems)
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            problems.append((400, "email: not an email address"))
        fields = {
            name: _text(form, name, 100, problems)
            for name in ("device_id", "first_name", "last_name", "phone", "address_id")
        }
        attributes = _attributes(form, service, problems) if service else {}
        if (lat is None) != (lon is None):
            problems.append((400, "lat and long: give both, or address_string"))
        elif lat is None and address is None:
            problems.append((400, "location: lat and long, or address_string, is required"))
        if lat is None and lon is None and address is not None and not problems:
            place = await self.locate_address(conn, address)
            if place is None:
                problems.append(
                    (400, "address_string: cannot be located; send lat and long as well")
                )
            else:
                lat, lon = place
        district = None
        if not problems and lat is not None and lon is not None:
            district = await self.district(conn, lat, lon)
            if district is None:
                problems.append((400, "lat/long: the location is outside the province"))
        if problems or service is None or lat is None or lon is None or district is None:
            raise Open311Error(400, problems)
        caller = _text(form, "caller_number", 32, problems) if channel == "hotline" else None
        return NewReport(
            service=service,
            lat=lat,
            lon=lon,
            district_id=district,
            description=description,
            address_string=address,
            address_id=fields["address_id"],
            attributes=attributes,
            media_url=media_url,
            channel="hotline" if channel == "hotline" else "app",
            api_key_name=key_name,
            device_id=fields["device_id"],
            first_name=fields["first_name"],
            last_name=fields["last_name"],
            email=email,
            phone=fields["phone"],
            caller_number_enc=seal(self.caller_key, caller) if caller and self.caller_key else None,
        )


def pool(request: Request) -> Any:
    return request.app.state.pool


def base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


async def discovery(request: Request, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
    except Open311Error as exc:
        return _answer("json", exc)
    body = {
        "changeset": w3c(datetime(2026, 12, 4)),
        "contact": _state(request).catalogue.contact,
        "key_service": "Ask the province's administrators (ioc open311 key add NAME)",
        "endpoints": [
            {
                "specification": SPEC,
                "url": base(request),
                "changeset": w3c(datetime(2026, 12, 4)),
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return render(fmt, "discovery", None, body)


async def services(request: Request, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
    except Open311Error as exc:
        return _answer("json", exc)
    return render(
        fmt, "services", "service", [_service(s) for s in _state(request).catalogue.services]
    )


async def definition(request: Request, service_code: str, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
        service = _state(request).catalogue.service(service_code)
        if service is None:
            raise Open311Error(404, [(404, f"service_code {service_code!r} not found")])
    except Open311Error as exc:
        return _answer(fmt if fmt in FORMATS else "json", exc)
    return render(fmt, "service_definition", None, _definition(service))


async def _post(request: Request, fmt: str, channel: str, key_name: str | None) -> Response:
    form = await request.form()
    if channel != "hotline":  # hotline operators are signed-in staff, often behind one IP
        device = form.get("device_id")
        client = request.client.host if request.client else "unknown"
        _state(request).limit(
            key_name, f"device:{device}" if isinstance(device, str) and device else client
        )
    async with pool(request).acquire() as conn:
        report = await _state(request).report(conn, form, channel=channel, key_name=key_name)
        upload = form.get("media")
        if isinstance(upload, UploadFile):
            media_id = await _state(request).store_photo(conn, upload)
            report = NewReport(**{**_fields(report), "media_id": media_id})
        accepted = await accept_report(conn, _state(request).catalogue, report)
    body = [
        {
            "service_request_id": str(accepted.request_id),
            "token": str(accepted.token),
            "service_notice": None,
            "account_id": None,
        }
    ]
    return render(fmt, "service_requests", "request", body, status=201)


async def post_request(request: Request, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
        form = await request.form()
        raw_key = form.get("api_key") or request.query_params.get("api_key")
        async with pool(request).acquire() as conn:
            owner = await key_owner(conn, raw_key) if isinstance(raw_key, str) else None
        if owner is None:
            raise Open311Error(403, [(403, "api_key: missing, invalid or revoked")])
        return await _post(request, fmt, "app", owner)
    except Open311Error as exc:
        return _answer(fmt if fmt in FORMATS else "json", exc)
    finally:
        await _close_form(request)


async def post_hotline(request: Request, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
        return await _post(request, fmt, "hotline", None)
    except Open311Error as exc:
        return _answer(fmt if fmt in FORMATS else "json", exc)
    finally:
        await _close_form(request)


async def caller(request: Request, service_request_id: str) -> dict[str, str | None]:
    if (
        not (service_request_id.isascii() and service_request_id.isdigit())
        or len(service_request_id) > 18
    ):
        return {"caller_number": None}
    async with pool(request).acquire() as conn:
        sealed = await conn.fetchval(
            "SELECT caller_number_enc FROM open311_requests WHERE id = $1",
            int(service_request_id),
        )
    key = _state(request).caller_key
    if sealed is None or key is None:
        return {"caller_number": None}
    return {"caller_number": unseal(key, sealed)}


async def get_requests(
    request: Request,
    fmt: str,
    *,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    extensions: str | None = None,
) -> Response:
    try:
        fmt = _format(fmt)
        query = _query(service_request_id, service_code, start_date, end_date, status)
        return await _requests(request, fmt, query, extensions == "true")
    except Open311Error as exc:
        return _answer(fmt if fmt in FORMATS else "json", exc)


async def get_request(
    request: Request, service_request_id: str, fmt: str, extensions: str | None = None
) -> Response:
    try:
        fmt = _format(fmt)
        ids = _ids(service_request_id)
        response = await _requests(request, fmt, Query(ids=ids), extensions == "true")
        if response.headers.get("x-open311-count") == "0":
            raise Open311Error(404, [(404, f"service_request_id {ids[0]} not found")])
    except Open311Error as exc:
        return _answer(fmt if fmt in FORMATS else "json", exc)
    return response


async def _requests(request: Request, fmt: str, query: Query, notes: bool) -> Response:
    media = base(request) + "/media/"
    async with pool(request).acquire() as conn:
        records = await find_requests(conn, query)
        body = [service_request(r, _state(request).catalogue, media) for r in records]
        if notes:
            for item, record in zip(body, records, strict=True):
                item["notes"] = await request_notes(conn, record["id"])
    response = render(fmt, "service_requests", "request", body)
    response.headers["X-Open311-Count"] = str(len(body))
    return response


async def token(request: Request, token: str, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
        try:
            parsed = uuid.UUID(token)
        except ValueError as exc:
            raise Open311Error(404, [(404, f"token {token!r} not found")]) from exc
        async with pool(request).acquire() as conn:
            request_id = await request_by_token(conn, parsed)
        if request_id is None:
            raise Open311Error(404, [(404, f"token {token!r} not found")])
    except Open311Error as exc:
        return _answer(fmt if fmt in FORMATS else "json", exc)
    body = [{"service_request_id": str(request_id), "token": str(parsed)}]
    return render(fmt, "service_requests", "request", body)


async def upload(request: Request, fmt: str) -> Response:
    try:
        fmt = _format(fmt)
        form = await request.form()
        raw_key = form.get("api_key") or request.query_params.get("api_key")
        async with pool(request).acquire() as conn:
            owner = await key_owner(conn, raw_key) if isinstance(raw_key, str) else None
            if owner is None:
                raise Open311Error(403, [(403, "api_key: missing, invalid or revoked")])
            client = request.client.host if request.client else "unknown"
            _state(request).limit(owner, client)
            photo = form.get("media")
            if not isinstance(photo, UploadFile):
                raise _bad("media: a file is required (multipart/form-data)")
            media_id = await _state(request).store_photo(conn, photo)
    except Open311Error as exc:
        return _answer(fmt if fmt in FORMATS else "json", exc)
    finally:
        await _close_form(request)
    body = [{"media_url": f"{base(request)}/media/{media_id}"}]
    return render(fmt, "media", "item", body, status=201)


async def media(request: Request, media_id: str) -> Response:
    try:
        parsed = uuid.UUID(media_id)
    except ValueError:
        return _answer("json", Open311Error(404, [(404, "media not found")]))
    async with pool(request).acquire() as conn:
        row = await conn.fetchrow(
            "SELECT content_type, body FROM open311_media WHERE id = $1", parsed
        )
    if row is None:
        return _answer("json", Open311Error(404, [(404, "media not found")]))
    return Response(
        row["body"],
        media_type=row["content_type"],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=86400"},
    )


def _state(request: Request) -> Open311:
    api: Open311 = request.app.state.open311
    return api


def open311_router(
    *,
    operators: Callable[..., Awaitable[Any]],
    admins: Callable[..., Awaitable[Any]],
    catalogue: Catalogue | None = None,
    sweep_interval: float = 2.0,
) -> APIRouter:
    """The Open311 routes; ``operators`` and ``admins`` are the console's role gates (the
    hotline form posts as an operator; only admins read a caller's number)."""
    api = Open311(catalogue or load_catalogue(), caller_key())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.open311 = api
        async with ReportSweep(app.state.pool, api.catalogue, sweep_interval) as sweep:
            app.state.open311_sweep = sweep
            yield

    router = APIRouter(prefix=PREFIX, tags=["open311"], lifespan=lifespan)
    routes: list[tuple[str, str, Callable[..., Awaitable[Any]], str]] = [
        ("GET", "/discovery.{fmt}", discovery, "Open311 discovery"),
        ("GET", "/services.{fmt}", services, "Service list"),
        ("GET", "/services/{service_code}.{fmt}", definition, "Service definition"),
        ("GET", "/requests.{fmt}", get_requests, "Service requests"),
        ("GET", "/requests/{service_request_id}.{fmt}", get_request, "One service request"),
        ("GET", "/tokens/{token}.{fmt}", token, "Service request id from a token"),
        ("POST", "/media.{fmt}", upload, "Upload a photo; returns its media_url"),
        ("GET", "/media/{media_id}", media, "A photo sent with a request"),
    ]
    for method, path, endpoint, summary in routes:
        router.add_api_route(path, endpoint, methods=[method], summary=summary)
    router.add_api_route(
        "/requests.{fmt}",
        post_request,
        methods=["POST"],
        summary="Post a service request (api_key)",
        openapi_extra=_FORM_BODY,
    )
    router.add_api_route(
        "/hotline/requests.{fmt}",
        post_hotline,
        methods=["POST"],
        summary="Post a hotline report (console operators)",
        openapi_extra=_FORM_BODY,
        dependencies=[Depends(operators)],
    )
    router.add_api_route(
        "/hotline/requests/{service_request_id}/caller",
        caller,
        methods=["GET"],
        summary="A hotline caller's number (admins only)",
        dependencies=[Depends(admins)],
    )
    return router


async def _close_form(request: Request) -> None:
    """Uploaded files spool to temporary files: close them once the request is answered."""
    form = await request.form()
    await form.close()


def _fields(report: NewReport) -> dict[str, Any]:
    return {name: getattr(report, name) for name in report.__dataclass_fields__}


def _ids(text: str) -> list[int]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if (
        not ids
        or len(ids) > 100
        or not all(i.isascii() and i.isdigit() and len(i) < 18 for i in ids)
    ):
        raise Open311Error(404, [(404, f"service_request_id {text[:40]!r} not found")])
    return [int(i) for i in ids]


def _date(name: str, text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"{name}: {text[:40]!r} is not a W3C datetime") from exc
    if value.tzinfo is None:
        raise _bad(f"{name}: must carry a UTC offset")
    if not 1970 <= value.year < 2200:
        raise _bad(f"{name}: must be from 1970 up to 2200")
    return value


def _codes(text: str | None) -> list[str] | None:
    if not text:
        return None
    codes = [c.strip() for c in text.split(",") if c.strip()]
    if len(codes) > 50 or any(len(c) > 64 or "\x00" in c for c in codes):
        raise _bad("service_code: at most 50 codes of at most 64 characters")
    return codes


def _query(
    ids: str | None, codes: str | None, start: str | None, end: str | None, status: str | None
) -> Query:
    statuses = None
    if status:
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        if not set(statuses) <= {"open", "closed"}:
            raise _bad("status: open, closed, or both separated by a comma")
    begin, until = _date("start_date", start), _date("end_date", end)
    if begin and until and begin > until:
        raise _bad("start_date: must not be after end_date")
    if begin and until and (until - begin).days > 90:
        raise _bad("start_date: at most 90 days before end_date")
    if not ids and begin is None:
        # The spec's default: the last 90 days (or the 90 days before end_date).
        begin = (until or datetime.now(UTC)) - timedelta(days=90)
    return Query(
        ids=_ids(ids) if ids else None,
        service_codes=_codes(codes),
        statuses=statuses,
        start=begin,
        end=until,
    )


PUBLIC_PATHS = frozenset(
    f"{PREFIX}{path}:{method}"
    for path, method in (
        ("/discovery.{fmt}", "GET"),
        ("/services.{fmt}", "GET"),
        ("/services/{service_code}.{fmt}", "GET"),
        ("/requests.{fmt}", "GET"),
        ("/requests.{fmt}", "POST"),
        ("/requests/{service_request_id}.{fmt}", "GET"),
        ("/tokens/{token}.{fmt}", "GET"),
        ("/media.{fmt}", "POST"),
        ("/media/{media_id}", "GET"),
    )
)
"""Open311 routes anyone may call (posting needs an api_key, checked inside)."""
