"""Evidence clips over HTTP: agents upload them (resumable), operators and police list and
play them, and every read leaves a custody entry naming who.

- ``POST /api/v1/evidence/uploads`` (agent): a :class:`protocol.ClipManifest`; answers the
  offset to send from. ``GET .../uploads/{clip}`` says where an upload stands;
  ``PUT .../uploads/{clip}?offset=N`` appends a chunk (at most 1 MiB). The last
  chunk is checked and kept (201); a refusal carries ``Upload-Final: true`` when sending
  again cannot help. Agents authenticate with ``Authorization: Bearer <agent>:<token>``
  (``ioc evidence agent-token``).
- ``GET /api/v1/alerts/{id}/clips``: the alert's clips with SHA-256 and SHA-1.
- ``GET /api/v1/evidence/clips/{clip}/file``: the MP4, with a console token (operators,
  admins; police for their incidents; ``?export=true`` downloads it as a file) or with a
  signed link from a CAP message (``aud``, ``exp``, ``sig``). Recorded as viewed, exported
  or delivered.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

import evidence
from alerts import AlertNotFoundError, CapResource, get_alert, stage_clip_update
from evidence import (
    ClipNotFoundError,
    ClipRecord,
    ClipTamperedError,
    ClipView,
    EvidenceCentre,
    LinkError,
    UploadRefusedError,
)
from store import Connection

from ._auth import Principal, Role, authenticate
from ._deps import AUTH_RESPONSES, Credentials, Incidents, Pool
from ._openapi import documented, json_response
from ._scope import may_see

router = APIRouter(tags=["evidence"])
UPLOADS = "/api/v1/evidence/uploads"
MAX_CHUNK = 1 << 20
"""Largest upload chunk (the body limit of the upload routes; other routes keep theirs)."""
CLIP_FILE = "/api/v1/evidence/clips/{clip_id}/file"
PUBLIC = frozenset(
    {f"{UPLOADS}:POST", f"{UPLOADS}/{{clip_id}}:GET", f"{UPLOADS}/{{clip_id}}:PUT"}
    | {f"{CLIP_FILE}:GET"}
)
"""Routes without a role gate: agents authenticate with their upload token, and a clip's
file takes a console token or a signed link (each route checks its own)."""


def centre_of(request: Request) -> EvidenceCentre:
    centre: EvidenceCentre | None = getattr(request.app.state, "evidence", None)
    if centre is None:
        # Not a server fault: this API has no evidence store (IOC_EVIDENCE_SECRET unset).
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "evidence clips are not configured on this server"
        )
    return centre


Centre = Annotated[EvidenceCentre, Depends(centre_of)]


def agent_of(centre: Centre, credentials: Credentials) -> str:
    agent = (
        None
        if credentials is None
        else evidence.check_agent(centre.secret, credentials.credentials)
    )
    if agent is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an agent upload token is required (Bearer <agent>:<token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return agent


Agent = Annotated[str, Depends(agent_of)]


async def _refused(pool: asyncpg.Pool, error: UploadRefusedError) -> HTTPException:
    async with pool.acquire() as conn:
        await evidence.record_refusal(conn, error)
    return HTTPException(
        error.status, error.reason, headers={"Upload-Final": "true" if error.final else "false"}
    )


def _at(clip_id: str, offset: int) -> Response:
    return JSONResponse(
        {"clip_id": clip_id, "offset": offset}, headers={"Upload-Offset": str(offset)}
    )


def _check_id(clip_id: str) -> str:
    if not evidence.CLIP_ID.fullmatch(clip_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"clip {clip_id!r} does not exist")
    return clip_id


@router.post(UPLOADS, status_code=200)
async def begin_upload(request: Request, pool: Pool, centre: Centre, agent: Agent) -> Response:
    """Start or resume the upload a manifest describes."""
    body = await request.body()
    try:
        async with pool.acquire() as conn, conn.transaction():
            clip_id, offset = await centre.intake.begin(conn, agent, body)
    except UploadRefusedError as exc:
        raise await _refused(pool, exc) from exc
    return JSONResponse(
        {"clip_id": clip_id, "offset": offset}, headers={"Upload-Offset": str(offset)}
    )


@router.get(UPLOADS + "/{clip_id}")
async def upload_offset(clip_id: str, pool: Pool, centre: Centre, agent: Agent) -> Response:
    """Where an open upload stands (``Upload-Offset``)."""
    try:
        offset = centre.intake.offset(agent, _check_id(clip_id))
    except UploadRefusedError as exc:
        raise await _refused(pool, exc) from exc
    return JSONResponse(
        {"clip_id": clip_id, "offset": offset}, headers={"Upload-Offset": str(offset)}
    )


@router.put(UPLOADS + "/{clip_id}")
async def upload_chunk(
    *,
    clip_id: str,
    request: Request,
    pool: Pool,
    centre: Centre,
    agent: Agent,
    offset: Annotated[int, Query(ge=0)],
) -> Response:
    """Append a chunk at ``offset``; the last one is checked and kept (201)."""
    chunk = await request.body()
    try:
        new_offset, done = centre.intake.append(agent, _check_id(clip_id), offset, chunk)
        if not done:
            return _at(clip_id, new_offset)
        async with pool.acquire() as conn, conn.transaction():
            record = await centre.intake.finish(conn, agent, clip_id)
            await announce_clip(conn, centre, record)
    except UploadRefusedError as exc:
        raise await _refused(pool, exc) from exc
    return JSONResponse(
        {"clip_id": clip_id, "offset": new_offset, "sha256": record.sha256},
        status_code=status.HTTP_201_CREATED,
        headers={"Upload-Offset": str(new_offset)},
    )


@router.get(
    "/api/v1/alerts/{alert_id}/clips",
    responses={**AUTH_RESPONSES, **documented(list[ClipView])},
)
async def list_clips(alert_id: uuid.UUID, pool: Pool, who: Incidents) -> Response:
    """The alert's evidence clips with their digests (police: their incidents only)."""
    async with pool.acquire() as conn:
        try:
            alert = await get_alert(conn, str(alert_id))
        except AlertNotFoundError:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"alert {alert_id} does not exist"
            ) from None
        if not await may_see(conn, who, alert):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} does not exist")
        clips = await evidence.alert_clips(conn, str(alert_id))
    return json_response(clips)


async def _reader(pool: Pool, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or len(credentials.credentials) > 256:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token or a signed link is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    async with pool.acquire() as conn:
        who = await authenticate(conn, credentials.credentials)
    if who is None or who.role not in (Role.OPERATOR, Role.ADMIN, Role.POLICE):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this role may not see evidence clips")
    return who


@router.get(CLIP_FILE, response_class=Response, responses={200: {"content": {"video/mp4": {}}}})
async def clip_file(
    *,
    clip_id: str,
    pool: Pool,
    centre: Centre,
    credentials: Credentials,
    export: bool = False,
    aud: Annotated[str | None, Query(max_length=64)] = None,
    exp: int | None = None,
    sig: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The clip (video/mp4), recorded in its custody log as viewed, exported or delivered."""
    _check_id(clip_id)
    if sig is not None and aud is not None and exp is not None:
        try:
            centre.links.check(clip_id, aud, exp, sig)
        except LinkError as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, exc.reason) from exc
        reader: Principal | None = None
        actor, export = f"link:{aud}", True
    else:
        reader = await _reader(pool, credentials)
        actor = reader.username
    action: Literal["viewed", "exported"] = "exported" if export else "viewed"
    async with pool.acquire() as conn, conn.transaction():
        try:
            clip = await evidence.get_clip(conn, clip_id)
            if reader is not None and not await may_see(
                conn, reader, await get_alert(conn, clip.alert_id)
            ):
                raise ClipNotFoundError(clip_id)  # police: not one of their incidents
            clip, data = await evidence.read_clip(
                conn, centre.store, clip_id, actor=actor, action=action
            )
        except ClipNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except ClipTamperedError as exc:
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc)) from exc
    headers = {"Digest": f"sha-256={clip.sha256}", "Cache-Control": "private, no-store"}
    if export:
        headers["Content-Disposition"] = f'attachment; filename="{clip_id}.mp4"'
    return Response(data, media_type="video/mp4", headers=headers)


async def announce_clip(conn: Connection, centre: EvidenceCentre, record: ClipRecord) -> None:
    """Tell the police of a clip of an incident they know (a CAP Update with a signed link);
    the link's use is recorded as delivered."""
    alert = await get_alert(conn, record.alert_id)
    resource = CapResource(
        desc="video clip",
        mime_type="video/mp4",
        size=record.size,
        uri=centre.links.sign(record.clip_id, "police", ttl=centre.link_ttl),
        digest=record.sha1,
    )
    if await stage_clip_update(conn, alert, resource):
        await evidence.append_custody(
            conn,
            record.clip_id,
            evidence.CustodyAction.DELIVERED,
            "centre",
            {"to": "police", "via": "CAP Update", "link_audience": "police"},
        )
