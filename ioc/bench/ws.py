"""``ioc bench ws``: alert changes fanned out to many websocket clients.

Three processes on one machine: the console API (uvicorn, as in production), a writer that
commits alert changes the way the alerts engine does (one transaction each, at a steady
rate), and this process holding every client connection. Latency is measured per change
from the writer's commit to the moment the LAST client has it, both on the wall clock (one
clock for every process of the machine).

Ours (``/ws``: one feed subscription for the process, each change encoded once, bounded
per-client queues) runs side by side with the spine's design as the baseline
(``/ws-baseline``: one feed subscription and one JSON encoding per client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import psutil
import uvicorn
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from alerts import AlertFeed, Observation, open_alerts
from alerts._repository import observe, record_change
from console_api import Role, add_user, authenticate, create_app, issue_token
from protocol import EventKind, Severity, stop_tasks
from store import ALL_MIGRATIONS, StoreConfig, migrate

from ..servers import PostgresCluster
from ._wsclient import LeanClient

_json = msgspec.json.Encoder()


def _say(message: str) -> None:
    sys.stderr.write(f"[bench ws] {message}\n")
    sys.stderr.flush()


# --- the server process -----------------------------------------------------------------


async def _spine_live(websocket: WebSocket) -> None:
    """The spine's handler, kept as the baseline: every client subscribes to the feed itself
    and every change is encoded once per client."""
    async with websocket.app.state.pool.acquire() as conn:
        who = await authenticate(conn, websocket.query_params.get("token", ""))
        if who is None:
            await websocket.close(1008)
            return
        feed: AlertFeed = websocket.app.state.feed
        subscription = feed.subscribe()
        snapshot_seq = feed.last_seq
        snapshot = await open_alerts(conn)
    await websocket.accept()

    async def forward() -> None:
        while True:
            change = await subscription.queue.get()
            if change.seq > snapshot_seq:
                await websocket.send_bytes(
                    _json.encode({"type": "change", "seq": change.seq, "alert": change.alert})
                )

    async def until_disconnect() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    try:
        await websocket.send_bytes(
            _json.encode({"type": "snapshot", "seq": snapshot_seq, "alerts": snapshot})
        )
        tasks = [asyncio.ensure_future(forward()), asyncio.ensure_future(until_disconnect())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop_tasks(tasks)
    except WebSocketDisconnect:
        pass
    finally:
        feed.unsubscribe(subscription)


def _serve(url: str, report: multiprocessing.connection.Connection) -> None:
    app: FastAPI = create_app(StoreConfig(url=url, max_size=20))
    app.add_api_websocket_route("/ws-baseline", _spine_live)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    report.send(sock.getsockname()[1])
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, ws_per_message_deflate=False
    )
    uvicorn.Server(config).run(sockets=[sock])


# --- the writer process -----------------------------------------------------------------


async def _write(url: str, changes: int, interval: float) -> dict[int, float]:
    """Commit ``changes`` alert changes, one transaction each; {seq: commit wall time}."""
    conn = await asyncpg.connect(url)
    committed: dict[int, float] = {}
    try:
        start = time.monotonic()
        for i in range(changes):
            observation = Observation(
                event_id=f"bench:{i}",
                kind=EventKind.INTRUSION,
                source_id="bench-cam",
                zone_id=f"zone-{i % 20}",
                phase="start",
                at=time.time(),
            )
            async with conn.transaction():
                changed = await observe(conn, observation, "bench-district", Severity.MAJOR)
                if changed is None:
                    raise RuntimeError("a start event must open or update an alert")
                seq = await record_change(conn, changed[0])
            committed[seq] = time.time()
            # A steady rate, as alerts arrive in operation (not a burst).
            await asyncio.sleep(max(0.0, start + (i + 1) * interval - time.monotonic()))
    finally:
        await conn.close()
    return committed


def _writer(
    url: str, changes: int, interval: float, report: multiprocessing.connection.Connection
) -> None:
    report.recv()  # go
    report.send(asyncio.run(_write(url, changes, interval)))


# --- the clients (this process) ---------------------------------------------------------


class _Seq(msgspec.Struct):
    type: str
    seq: int = 0


_decode = msgspec.json.Decoder(_Seq)


@dataclass
class _Clients:
    expected: int
    received: dict[int, list[float]] = field(default_factory=dict)
    duplicates: int = 0
    out_of_order: int = 0
    ready: int = 0
    done: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self.changed.set()

    async def until(self, predicate: Any, seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def _client(host: str, path: str, token: str, clients: _Clients, total: int) -> None:
    baseline = path.endswith("baseline")
    state = {"last": -1, "seen": 0}
    finished = asyncio.Event()

    def on_message(payload: bytes, at: float) -> None:
        message = _decode.decode(payload)
        if message.type == "snapshot":
            clients.ready += 1
            clients.wake()
            return
        if message.type != "change":
            return
        if message.seq == state["last"]:
            clients.duplicates += 1
        elif message.seq < state["last"]:
            clients.out_of_order += 1
        state["last"] = message.seq
        clients.received.setdefault(message.seq, []).append(at)
        state["seen"] += 1
        if state["seen"] == total:
            finished.set()

    address, port = host.split(":")
    loop = asyncio.get_running_loop()
    target = f"{path}?token={token}" if baseline else path
    transport, client = await loop.create_connection(
        lambda: LeanClient(host, target, on_message), address, int(port)
    )
    try:
        await client.upgraded
        if not baseline:
            client.send_text(json.dumps({"type": "auth", "token": token}))
            client.send_text(json.dumps({"type": "subscribe"}))
        await finished.wait()
        clients.done += 1
        clients.wake()
    finally:
        transport.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _measure(
    host: str,
    path: str,
    token: str,
    *,
    count: int,
    changes: int,
    writer: Any,
    server_cpu: Callable[[], float],
) -> dict[str, Any]:
    clients = _Clients(expected=count)
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_client(host, path, token, clients, changes)))
        if i % 50 == 49:  # connect in waves: a burst of 500 handshakes is not the point
            await clients.until(lambda: clients.ready >= len(tasks), 120)
    await clients.until(lambda: clients.ready == count, 120)
    _say(f"{path}: {count} clients subscribed; writing {changes} changes")
    cpu_before = server_cpu()
    writer.send("go")
    committed: dict[int, float] = await asyncio.to_thread(writer.recv)
    try:
        await clients.until(lambda: clients.done == count, 60)
    except TimeoutError:
        _say(f"{path}: not every client received every change within 60 s")
    # Server CPU while changes flow (not while clients connect): unlike latency, load from
    # elsewhere on the machine does not inflate it.
    cpu_seconds = server_cpu() - cpu_before
    await stop_tasks(tasks)
    latencies = [
        (max(clients.received[seq]) - at) * 1000
        for seq, at in committed.items()
        if len(clients.received.get(seq, ())) == count
    ]
    delivered = sum(len(clients.received.get(seq, ())) for seq in committed)
    return {
        "latencies": latencies,
        "lost": changes * count - delivered,
        "duplicates": clients.duplicates,
        "out_of_order": clients.out_of_order,
        "cpu_s": cpu_seconds,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for run in runs for x in run["latencies"]]
    return {
        "p50_ms": round(_percentile(latencies, 0.50), 2) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
        "lost": sum(run["lost"] for run in runs),
        "duplicates": sum(run["duplicates"] for run in runs),
        "out_of_order": sum(run["out_of_order"] for run in runs),
        "server_cpu_ms_per_change": round(
            1000
            * sum(run.get("cpu_s", 0.0) for run in runs)
            / max(1, sum(len(run["latencies"]) for run in runs)),
            2,
        ),
    }


# --- orchestration ----------------------------------------------------------------------


async def _prepare(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, ALL_MIGRATIONS)
        await conn.execute(
            """INSERT INTO districts (id, name, kind, lat, lon)
               VALUES ('bench-district', 'Bench', 'district', 10.36, 106.36);
               INSERT INTO cameras (id, name, kind, district_id, lat, lon, fps)
               VALUES ('bench-cam', 'Bench camera', 'security', 'bench-district',
                       10.36, 106.36, 5)"""
        )
        await add_user(conn, "bench", Role.OPERATOR, "bench password, not secret")
        return (await issue_token(conn, "bench")).token
    finally:
        await conn.close()


@contextlib.contextmanager
def _process(
    target: Any, *args: Any
) -> Iterator[tuple[multiprocessing.connection.Connection, psutil.Process]]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    try:
        yield ours, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()


def run(clients: int, changes: int, rate: float, rounds: int = 2) -> dict[str, Any]:
    """Alternate ours and the baseline ``rounds`` times each (the order flips every round,
    so load from elsewhere on the machine falls on both alike) and pool the latencies."""
    interval = 1.0 / rate
    per_run = max(1, changes // rounds)
    runs: dict[str, list[dict[str, Any]]] = {"/ws": [], "/ws-baseline": []}
    with tempfile.TemporaryDirectory(prefix="ioc-bench-ws-") as root:
        cluster = PostgresCluster(Path(root) / "postgres", durable=False)
        _say("starting PostgreSQL")
        cluster.start()
        try:
            url = cluster.url_for("postgres")
            token = asyncio.run(_prepare(url))
            with _process(_serve, url) as (server, server_process):
                host = f"127.0.0.1:{server.recv()}"
                _say(f"console API on {host}")
                for round_ in range(rounds):
                    order = ("/ws", "/ws-baseline") if round_ % 2 == 0 else ("/ws-baseline", "/ws")
                    for path in order:
                        with _process(_writer, url, per_run, interval) as (writer, _):
                            result = asyncio.run(
                                _measure(
                                    host,
                                    path,
                                    token,
                                    count=clients,
                                    changes=per_run,
                                    writer=writer,
                                    server_cpu=lambda: sum(server_process.cpu_times()[:2]),
                                )
                            )
                        runs[path].append(result)
                        _say(f"round {round_ + 1}/{rounds} {path}: {_summary([result])}")
        finally:
            cluster.stop("immediate")
    ours, baseline = _summary(runs["/ws"]), _summary(runs["/ws-baseline"])
    return {
        "clients": clients,
        "changes": per_run * rounds,
        "rate_per_s": rate,
        **ours,
        "baseline": "spine /ws: one feed subscription and one JSON encoding per client",
        "baseline_p50_ms": baseline["p50_ms"],
        "baseline_p99_ms": baseline["p99_ms"],
        "baseline_lost": baseline["lost"],
        "baseline_server_cpu_ms_per_change": baseline["server_cpu_ms_per_change"],
        "p99_ratio": (
            round(baseline["p99_ms"] / ours["p99_ms"], 2)
            if ours["p99_ms"] and baseline["p99_ms"]
            else None
        ),
        "target_p99_ms": 100,
    }
