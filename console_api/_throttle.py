"""Login throttling, and password hashing off the event loop.

Every failed login is counted per client address and per username over a sliding window;
past the limit further attempts are answered 429 with ``Retry-After`` before any password
is hashed, so a flood costs a dictionary lookup per request, not an Argon2 hash. Argon2id
runs in a small thread pool of its own: each hash takes ~0.1 s of CPU and 64 MiB of memory,
so the pool's size bounds both, and the event loop (websockets, health) never waits on it.
Counts live in the process: an API run as several processes throttles in each.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.types import ASGIApp, Receive, Scope, Send

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("no user has this password")
"""Verified against when the user is unknown: the same work either way (no enumeration)."""


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
    """Seconds over which failures count."""

    def __post_init__(self) -> None:
        if self.per_address < 1 or self.per_user < 1 or self.window <= 0:
            raise ValueError("login limits must be at least 1 and the window positive")


class LoginThrottle:
    def __init__(self, limits: ThrottleLimits, *, max_keys: int = 100_000) -> None:
        self.limits = limits
        self.max_keys = max_keys
        self._failures: dict[str, collections.deque[float]] = {}
        self._refused: set[str] = set()

    def check(self, address: str, username: str, now: float | None = None) -> None:
        """Raise :class:`LoginThrottled` when either key is over its limit."""
        now = time.monotonic() if now is None else now
        for key, limit in self._keys(address, username):
            failures = self._recent(key, now)
            if failures is not None and len(failures) >= limit:
                first = key not in self._refused
                self._refused.add(key)
                raise LoginThrottled(key, failures[0] + self.limits.window - now, first)

    def refused_again(self, address: str, now: float | None = None) -> float | None:
        """Seconds to wait when this address is over its limit and its first refusal was
        already answered (and audited); None otherwise. Lets a flood's repeats be turned away
        before the request is even parsed."""
        key = f"address:{address}"
        if key not in self._refused:
            return None
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        if failures is None or len(failures) < self.limits.per_address:
            return None
        return failures[0] + self.limits.window - now

    def attempt(self, address: str, username: str, now: float | None = None) -> None:
        """Check, then count this attempt as failed until :meth:`succeeded` says otherwise:
        attempts that run at the same time cannot all pass the check."""
        self.check(address, username, now)
        self.failed(address, username, now)

    def failed(self, address: str, username: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) >= self.max_keys:
            self._forget_expired(now)
        for key, limit in self._keys(address, username):
            failures = self._failures.setdefault(key, collections.deque(maxlen=limit))
            failures.append(now)

    def succeeded(self, address: str, username: str) -> None:
        """The attempt counted by :meth:`attempt` was a good password."""
        self._failures.pop(f"user:{username}", None)
        failures = self._failures.get(f"address:{address}")
        if failures:
            failures.pop()

    def _keys(self, address: str, username: str) -> tuple[tuple[str, int], ...]:
        return (
            (f"address:{address}", self.limits.per_address),
            (f"user:{username}", self.limits.per_user),
        )

    def _recent(self, key: str, now: float) -> collections.deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.limits.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            self._refused.discard(key)
            return None
        return failures

    def _forget_expired(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) >= self.max_keys:  # still full: a spray of addresses
            self._failures.clear()
            self._refused.clear()


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
