"""Login throttling, and password hashing off the event loop.

Failed logins are counted per client address and per username in the database (table
``login_throttle``), so the limits hold across every API process behind the proxy: past
the limit further attempts are answered 429 with ``Retry-After`` before any password is
hashed. Each process also remembers the addresses it refused, and turns their repeats away
before routing (:class:`LoginFloodGate`), so a flood costs a dictionary lookup per request,
not a query or an Argon2 hash. Argon2id runs in a small thread pool of its own: each hash
takes ~0.1 s of CPU and 64 MiB of memory, so the pool's size bounds both, and the event loop
(websockets, health) never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.types import ASGIApp, Receive, Scope, Send

from store import Connection

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("no user has this password")
"""Verified against when the user is unknown: the same work either way (no enumeration)."""

MAX_WINDOW = 86_400.0
"""Longest throttle window; ``store.apply_retention`` forgets counts older than a day."""


class LoginThrottled(Exception):
    """Too many failed logins from this address or for this user; try after ``retry_after``."""

    def __init__(self, key: str, retry_after: float, first: bool) -> None:
        super().__init__(f"too many failed logins for {key}; retry in {math.ceil(retry_after)} s")
        self.key = key
        self.retry_after = retry_after
        self.first = first
        """The first refusal since the key reached its limit (the one worth auditing: a
        flood's millionth refusal says nothing new)."""


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    per_address: int = 20
    """Failed logins one client address may make per window."""
    per_user: int = 5
    """Failed logins for one username per window (from any address)."""
    window: float = 300.0
    """Seconds from a key's first failure over which its failures count."""

    def __post_init__(self) -> None:
        if self.per_address < 1 or self.per_user < 1 or not 0 < self.window <= MAX_WINDOW:
            raise ValueError(
                f"login limits must be at least 1 and the window within (0, {MAX_WINDOW:g}] s"
            )


# Both keys' rows, created or restarted when their window is over, locked (in key order,
# so two logins never deadlock) and read in one statement.
_WINDOWS = """
INSERT INTO login_throttle AS t (key, failures, refusals, since)
SELECT key, 0, 0, now() FROM unnest($1::text[]) AS key ORDER BY key
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN t.since <= now() - $2::interval THEN 0 ELSE t.failures END,
    refusals = CASE WHEN t.since <= now() - $2::interval THEN 0 ELSE t.refusals END,
    since = CASE WHEN t.since <= now() - $2::interval THEN now() ELSE t.since END
RETURNING key, failures, extract(epoch FROM since + $2::interval - now())::float8 AS left
"""


class LoginThrottle:
    """Failed logins per client address and per username, counted in the store."""

    def __init__(self, limits: ThrottleLimits, *, max_remembered: int = 100_000) -> None:
        self.limits = limits
        self.max_remembered = max_remembered
        self._refused: dict[str, float] = {}
        """Addresses this process refused, and until when (monotonic): the gate's memory."""

    async def attempt(self, conn: Connection, address: str, username: str) -> None:
        """Raise :class:`LoginThrottled` when the address or the username is over its limit;
        else count this attempt as failed until :meth:`succeeded` says otherwise (attempts
        at the same time, in any process, cannot all pass: the rows are locked)."""
        keys = self._keys(address, username)
        window = timedelta(seconds=self.limits.window)
        refusal: LoginThrottled | None = None
        async with conn.transaction():
            rows = await conn.fetch(_WINDOWS, sorted(keys), window)
            over = [row for row in rows if row["failures"] >= keys[row["key"]]]
            if over:
                key, retry_after = over[0]["key"], max(0.0, over[0]["left"])
                refusals = await conn.fetchval(
                    """UPDATE login_throttle SET refusals = refusals + 1 WHERE key = $1
                       RETURNING refusals""",
                    key,
                )
                refusal = LoginThrottled(key, retry_after, refusals == 1)
            else:
                await conn.execute(
                    "UPDATE login_throttle SET failures = failures + 1 WHERE key = ANY($1)",
                    list(keys),
                )
        if refusal is not None:  # raised after the commit: the refusal is counted
            if refusal.key.startswith("address:"):
                self._remember(address, refusal.retry_after)
            raise refusal

    async def succeeded(self, conn: Connection, address: str, username: str) -> None:
        """The attempt counted by :meth:`attempt` was a good password."""
        address_key, user_key = self._keys(address, username)  # in that order
        await conn.execute(
            """UPDATE login_throttle SET failures = CASE WHEN key = $2 THEN 0
                                                         ELSE greatest(failures - 1, 0) END
               WHERE key = ANY(ARRAY[$1, $2])""",
            address_key,
            user_key,
        )

    def refused_again(self, address: str) -> float | None:
        """Seconds to wait when this process already refused (and audited) this address in
        its current window; None otherwise. Lets a flood's repeats be turned away before
        the request is even parsed."""
        until = self._refused.get(address)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._refused[address]
            return None
        return left

    def _remember(self, address: str, retry_after: float) -> None:
        if len(self._refused) >= self.max_remembered:  # a spray of addresses
            now = time.monotonic()
            self._refused = {a: t for a, t in self._refused.items() if t > now}
            if len(self._refused) >= self.max_remembered:
                self._refused.clear()
        self._refused[address] = time.monotonic() + retry_after

    def _keys(self, address: str, username: str) -> dict[str, int]:
        """Each key with its limit. A username is hashed: as typed it may hold anything
        (a NUL byte, which no text column takes), and any length."""
        user = hashlib.sha256(username.encode(errors="surrogatepass")).hexdigest()[:32]
        return {
            f"address:{address[:64]}": self.limits.per_address,
            f"user:{user}": self.limits.per_user,
        }


class PasswordHashing:
    """Argon2id in ``workers`` threads (``async with`` owns them)."""

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError("password hashing needs at least one worker")
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="argon2", initializer=_lower_priority
        )

    async def __aenter__(self) -> PasswordHashing:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; an unknown user (None) costs the same and fails."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, _verify, password_hash or _DUMMY_HASH, password, password_hash is None
        )

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _hasher.hash, password)


def _lower_priority() -> None:
    """Hashing threads yield the CPU to the event loop's thread: on a busy machine a login
    flood then slows logins, not the live feed (Linux sets niceness per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _verify(password_hash: str, password: str, unknown: bool) -> bool:
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return not unknown


class LoginFloodGate:
    """ASGI middleware: a login from an address already refused (429) in this window is
    answered 429 at once, before routing, form parsing or the store: a flood's repeats cost
    next to nothing. The first refusal goes through the route, which audits it."""

    def __init__(self, app: ASGIApp, throttle: LoginThrottle, path: str) -> None:
        self.app = app
        self.throttle = throttle
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == "POST":
            client = scope.get("client")
            wait = self.throttle.refused_again(client[0] if client else "unknown")
            if wait is not None:
                body = json.dumps({"detail": "too many failed logins from this address"})
                await send(
                    {
                        "type": "http.response.start",
                        "status": 429,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body.encode()})
                return
        await self.app(scope, receive, send)
