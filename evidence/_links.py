"""Signed, expiring links to a clip, for receivers that hold no console token (the police
dispatch system reading a CAP ``resource``): HMAC-SHA256 over the clip, the audience and
the expiry time, with a secret only the centre knows."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlencode


class LinkError(ValueError):
    """A link that is forged, altered or expired (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClipLinks:
    secret: bytes
    base_url: str
    """The console API as the receivers reach it, e.g. ``https://ioc.example``."""

    def _mac(self, clip_id: str, audience: str, expires: int) -> str:
        message = f"{clip_id}\n{audience}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def sign(self, clip_id: str, audience: str, *, ttl: float, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + ttl)
        query = urlencode(
            {"aud": audience, "exp": expires, "sig": self._mac(clip_id, audience, expires)}
        )
        return f"{self.base_url.rstrip('/')}/api/v1/evidence/clips/{clip_id}/file?{query}"

    def check(
        self, clip_id: str, audience: str, expires: int, signature: str, *, now: float | None = None
    ) -> None:
        if not hmac.compare_digest(self._mac(clip_id, audience, expires), signature):
            raise LinkError("the link's signature does not match")
        if (time.time() if now is None else now) > expires:
            raise LinkError("the link has expired")
