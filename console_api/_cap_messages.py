"""The CAP 1.2 messages of one incident, as staged for the police, with their delivery states.

One XML document: the incident's messages in the order they were staged, each with one
``delivery`` per police endpoint (pending or delivered, attempts, the endpoint's last
answer) and the CAP ``alert`` exactly as it was sent (namespace
``urn:oasis:names:tc:emergency:cap:1.2``), so a dispatcher can check what they received
against what the centre sent.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter
from fastapi.responses import Response
from lxml import etree

from alerts import CAP_NS

from ._alerts import NOT_FOUND, AlertId, visible
from ._deps import AUTH_RESPONSES, Incidents, Pool
from ._openapi import Responses

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=AUTH_RESPONSES)

NS = "urn:x-ioc:console:cap-messages:1"
"""Our wrapper's namespace; the CAP documents inside keep their own."""
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
# Our own documents, parsed without entities or network access all the same.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
_XML: Responses = {
    200: {
        "description": (
            f"<capMessages xmlns='{NS}' incident=ID count=N>: a <message identifier msgType "
            "sent> per CAP message, holding a <delivery endpoint status attempts lastStatus "
            "lastError nextAttemptAt deliveredAt/> per endpoint and the CAP <alert> itself"
        ),
        "content": {"application/xml": {"schema": {"type": "string"}}},
    },
    **NOT_FOUND,
}


def _time(t: datetime) -> str:
    return t.astimezone(LOCAL).isoformat(timespec="seconds")


def cap_document(
    alert_id: str, messages: list[asyncpg.Record], deliveries: list[asyncpg.Record]
) -> bytes:
    root = etree.Element(f"{{{NS}}}capMessages", nsmap={None: NS})
    root.set("incident", alert_id)
    root.set("count", str(len(messages)))
    by_message: dict[str, list[asyncpg.Record]] = {}
    for d in deliveries:
        by_message.setdefault(d["identifier"], []).append(d)
    for m in messages:
        message = etree.SubElement(root, f"{{{NS}}}message")
        message.set("identifier", m["identifier"])
        message.set("msgType", m["msg_type"])
        message.set("sent", _time(m["sent"]))
        for d in by_message.get(m["identifier"], []):
            delivery = etree.SubElement(message, f"{{{NS}}}delivery")
            delivery.set("endpoint", d["endpoint_id"])
            delivery.set("status", d["status"])
            delivery.set("attempts", str(d["attempts"]))
            if d["last_status"] is not None:
                delivery.set("lastStatus", str(d["last_status"]))
            if d["last_error"]:
                delivery.set("lastError", d["last_error"][:500])
            if d["status"] == "pending":
                delivery.set("nextAttemptAt", _time(d["next_attempt_at"]))
            if d["delivered_at"] is not None:
                delivery.set("deliveredAt", _time(d["delivered_at"]))
        cap = etree.fromstring(m["body"].encode("utf-8"), _PARSER)
        if cap.tag != f"{{{CAP_NS}}}alert":
            raise ValueError(f"CAP message {m['identifier']} is not a CAP 1.2 alert")
        message.append(cap)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@router.get("/{alert_id}/cap", responses=_XML, response_class=Response)
async def cap_messages(pool: Pool, who: Incidents, alert_id: AlertId) -> Response:
    """The CAP messages sent to the police about this incident (none if it was never
    routed to them), oldest first, with each endpoint's delivery state."""
    await visible(pool, who, alert_id)
    async with pool.acquire() as conn:
        messages = await conn.fetch(
            """SELECT identifier, msg_type, sent, body FROM cap_messages WHERE alert_id = $1
               ORDER BY sent, length(identifier), identifier""",
            alert_id,
        )
        deliveries = await conn.fetch(
            """SELECT identifier, endpoint_id, status, attempts, last_status, last_error,
                      next_attempt_at, delivered_at
               FROM police_deliveries WHERE alert_id = $1 ORDER BY seq""",
            alert_id,
        )
    return Response(
        cap_document(str(alert_id), list(messages), list(deliveries)),
        media_type="application/xml",
    )
