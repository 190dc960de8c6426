"""The operators', police's and planners' API and the operations-room page."""

from ._app import PUBLIC_PATHS, create_app
from ._auth import (
    Hashed,
    IssuedToken,
    Principal,
    Role,
    User,
    add_user,
    authenticate,
    issue_token,
    logout,
    revoke_tokens,
)
from ._config import ConsoleConfig
from ._deps import RoleGate
from ._live import WS_BAD_MESSAGE, WS_FORBIDDEN, WS_TOO_SLOW, WS_UNAUTHENTICATED
from ._planner import Series
from ._snapshots import CameraSnapshots, Snapshot, SnapshotUnavailable
from ._throttle import ThrottleLimits

__all__ = [
    "PUBLIC_PATHS",
    "WS_BAD_MESSAGE",
    "WS_FORBIDDEN",
    "WS_TOO_SLOW",
    "WS_UNAUTHENTICATED",
    "CameraSnapshots",
    "ConsoleConfig",
    "Hashed",
    "IssuedToken",
    "Principal",
    "Role",
    "RoleGate",
    "Series",
    "Snapshot",
    "SnapshotUnavailable",
    "ThrottleLimits",
    "User",
    "add_user",
    "authenticate",
    "create_app",
    "issue_token",
    "logout",
    "revoke_tokens",
]
