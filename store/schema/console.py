"""Users and API tokens of the console (versions 300-399)."""

from __future__ import annotations

from .._migrations import Flavor, Migration


def _v300_users(flavor: Flavor) -> str:
    return """
    CREATE TABLE users (
        username text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
        role text NOT NULL CHECK (role IN ('operator', 'police', 'planner', 'admin')),
        password_hash text NOT NULL,
        display_name text,
        created_at timestamptz NOT NULL DEFAULT now(),
        disabled boolean NOT NULL DEFAULT false
    );
    -- Only a hash of each token is kept; the token itself is shown once, at login.
    CREATE TABLE api_tokens (
        token_hash bytea PRIMARY KEY,
        username text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
    );
    CREATE INDEX api_tokens_user ON api_tokens (username);
    """


MIGRATIONS = [Migration(300, "console users and tokens", _v300_users)]
