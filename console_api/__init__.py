"""The operators', police's and planners' API and the operations-room page."""

from ._app import create_app
from ._auth import Principal, Role, add_user, authenticate, login

__all__ = ["Principal", "Role", "add_user", "authenticate", "create_app", "login"]
