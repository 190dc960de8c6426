"""The demo's citizen: when a camera opens a stopped-vehicle, congestion, crowd or intrusion
alert, a citizen near it reports it through the Open311 API (the same path as any app), and
the report joins the camera's alert on the operators' map."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from alerts import AlertFeed
from protocol import Background, EventKind, Work
from store import Connection, StoreConfig, connect

from ._api import PREFIX

logger = logging.getLogger(__name__)
SERVICE_FOR = {
    str(EventKind.STOPPED_VEHICLE): "stalled-vehicle",
    str(EventKind.CONGESTION): "stalled-vehicle",
    str(EventKind.CROWD): "tourism",
    str(EventKind.INTRUSION): "security",
}
"""What the citizen reports near each kind of camera alert (a service that joins it)."""
NEARBY = 0.0004
"""Degrees north of the camera (~45 m): well within the join radius."""


class DemoCitizen(Background):
    def __init__(self, store: StoreConfig, api_url: str, api_key: str, reports: int = 3) -> None:
        self.store, self.api_url, self.api_key, self.reports = store, api_url, api_key, reports
        self.posted: list[str] = []
        self.reported = asyncio.Event()
        """Set once the first report is accepted (tests and the demo's log)."""

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        feed = await stack.enter_async_context(AlertFeed(self.store))
        conn = await connect(self.store)
        stack.push_async_callback(conn.close)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        return {"demo-citizen": self._run(feed, conn, http)}

    async def _run(self, feed: AlertFeed, conn: Connection, http: httpx.AsyncClient) -> None:
        sub = feed.subscribe()
        seen: set[str] = set()
        while len(self.posted) < self.reports:
            change = await sub.queue.get()
            alert = change.alert
            service = SERVICE_FOR.get(alert.kind)
            if service is None or alert.state != "open" or alert.source_id in seen:
                continue
            seen.add(alert.source_id)
            camera = await conn.fetchrow(
                "SELECT lat, lon FROM cameras WHERE id = $1", alert.source_id
            )
            if camera is None:
                continue
            try:
                answer = await http.post(
                    f"{self.api_url}{PREFIX}/requests.json",
                    data={
                        "api_key": self.api_key,
                        "service_code": service,
                        "lat": f"{camera['lat'] + NEARBY:.6f}",
                        "long": f"{camera['lon']:.6f}",
                        "description": f"Demo: {alert.title_vi} gần camera {alert.source_id}",
                        "device_id": f"demo-citizen-{len(self.posted) + 1}",
                    },
                )
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                logger.warning("demo citizen: report near %s failed: %s", alert.source_id, exc)
                continue
            request_id = answer.json()[0]["service_request_id"]
            self.posted.append(request_id)
            self.reported.set()
            logger.info(
                "demo citizen: Open311 request %s near camera %s (alert %s)",
                request_id,
                alert.source_id,
                alert.id,
            )
