"""Posting limits per API key and per device or client IP: a sliding minute per name."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class RateLimited(Exception):
    def __init__(self, what: str, retry_after: int) -> None:
        self.what = what
        self.retry_after = retry_after
        super().__init__(f"too many requests from this {what}; retry in {retry_after} s")


class SlidingWindow:
    """At most ``limit`` hits per ``period`` seconds for each name (memory per process)."""

    def __init__(
        self,
        what: str,
        limit: int,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.limit, self.period, self.clock = what, limit, period, clock
        self._hits: dict[str, deque[float]] = {}

    def check(self, name: str) -> None:
        """Count a hit for ``name``, or raise :class:`RateLimited` (the hit is not counted)."""
        now = self.clock()
        hits = self._hits.setdefault(name, deque())
        while hits and hits[0] <= now - self.period:
            hits.popleft()
        if len(hits) >= self.limit:
            raise RateLimited(self.what, max(1, math.ceil(hits[0] + self.period - now)))
        hits.append(now)
        if len(self._hits) > 100_000:  # forget idle names rather than grow without bound
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.period}
