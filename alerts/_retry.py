"""When to try a failed police delivery again: backoff with jitter, or as the receiver says."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC

from ._rules import Police


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def gone(self) -> bool:
        return self.status == 410


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def backoff(attempts: int, policy: Police) -> float:
    """Exponential with equal jitter: half the step for sure, the other half random."""
    step = min(
        policy.backoff_max_seconds, policy.backoff_base_seconds * 2.0 ** min(attempts - 1, 30)
    )
    return step / 2 + random.uniform(0, step / 2)
