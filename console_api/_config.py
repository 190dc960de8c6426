"""What an operator of the console API may tune, with bounds; defaults suit the province."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from ._internals import Exposure
from ._throttle import ThrottleLimits


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    token_lifetime: timedelta = timedelta(hours=12)
    """How long a bearer token from a login stays valid (a shift, with margin)."""
    internals: Exposure = "open"
    """/metrics, /docs, /redoc, /openapi.json: "open" (the demo), "admin" (a bearer token
    of an administrator) or "off" (404); production sets admin or off."""
    login_limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    """Failed logins per client address and per username before 429 (per window)."""
    password_workers: int = 2
    """Threads hashing passwords (Argon2id, 64 MiB each): at most this many at once."""
    max_body_bytes: int = 64 * 1024
    """Largest request body accepted; larger ones get 413 before anything reads them."""
    ws_auth_timeout: float = 10.0
    """Seconds a new websocket has to send its auth message before it is closed."""
    ws_session_check: float = 15.0
    """Seconds between an open websocket's checks that its session still holds: one ended
    by logout or revocation, a disabled user or a changed role closes it (4401) within this."""
    ws_queue: int = 512
    """Changes that may wait for one websocket client; a client further behind is closed."""
    ws_send_timeout: float = 5.0
    """Seconds one websocket message may take to leave; a client slower than that (one that
    stopped reading) is closed with 4429 and resumes with ``after_seq``."""
    ws_replay_limit: int = 20_000
    """A resume further behind than this gets a fresh snapshot instead of a replay."""
    alert_list_limit: int = 1000
    """Most alerts one list request returns."""
    snapshot_timeout: float = 2.0
    """Seconds to wait for an edge's answer to a camera snapshot before answering 504."""
    snapshot_ttl: float = 5.0
    """Seconds a camera's snapshot (or its edge's silence) is served from memory, so a grid
    of every camera refreshed by many operators asks each edge at most once per period."""
    snapshot_width: int = 640
    """Width the edges scale grid snapshots down to (enough for a tile, a fraction of the
    bytes of a full frame)."""
    map_tiles: str | None = None
    """Raster tile URL template for the page's map (``https://tiles.example/{z}/{x}/{y}.png``,
    the province's own tile server); None: the page draws the province from its reference
    data. Its origin is added to the page's img-src."""

    @property
    def map_tiles_origin(self) -> str | None:
        if self.map_tiles is None:
            return None
        tiles = urlsplit(self.map_tiles)
        return f"{tiles.scheme}://{tiles.netloc}"

    def __post_init__(self) -> None:
        if self.token_lifetime <= timedelta(0):
            raise ValueError("token_lifetime must be positive")
        for name in (
            "password_workers",
            "max_body_bytes",
            "ws_queue",
            "ws_replay_limit",
            "alert_list_limit",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("ws_auth_timeout", "ws_session_check", "ws_send_timeout", "snapshot_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.snapshot_ttl < 0:
            raise ValueError("snapshot_ttl must not be negative")
        if self.map_tiles is not None:
            tiles = urlsplit(self.map_tiles)
            if tiles.scheme not in {"http", "https"} or not tiles.netloc:
                raise ValueError(f"map_tiles must be an http(s) URL, not {self.map_tiles!r}")
            if not all(part in self.map_tiles for part in ("{z}", "{x}", "{y}")):
                raise ValueError(f"map_tiles must hold {{z}}, {{x}} and {{y}}: {self.map_tiles!r}")
        if not 64 <= self.snapshot_width <= 3840:
            raise ValueError("snapshot_width must be between 64 and 3840")
