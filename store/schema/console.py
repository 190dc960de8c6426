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


def _v301_change_order(flavor: Flavor) -> str:
    # The console's websocket promises every change in order and resumes from a sequence
    # number, reading "seq > last" from the change log. A bigserial alone does not make that
    # safe: two transactions can take seq 10 and 11 and commit 11 first, and a reader that
    # saw 11 would never see 10. Taking a transaction-scoped advisory lock BEFORE the row's
    # default (nextval) is evaluated - a statement-level BEFORE trigger fires first - makes
    # seq order equal commit order: the next writer waits until the previous one commits.
    # Alert-changing transactions take their row locks before writing the change, so the
    # lock is always last in and first out (no lock-order cycle). (Owned by the console
    # because it is the log's reader; the alerts area may move it into its own range.)
    return """
    CREATE FUNCTION alert_changes_in_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('alert_changes')::bigint);
        RETURN NULL;
    END $$;
    CREATE TRIGGER alert_changes_commit_order BEFORE INSERT ON alert_changes
        FOR EACH STATEMENT EXECUTE FUNCTION alert_changes_in_commit_order();
    """


def _v320_login_audit(flavor: Flavor) -> str:
    # Every refused, throttled and accepted login (issue 17): who tried, from where. The
    # username is as typed (it may name no user), so no foreign key.
    return """
    CREATE TABLE login_audit (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        username text NOT NULL,
        address text NOT NULL,
        outcome text NOT NULL CHECK (outcome IN ('accepted', 'refused', 'throttled'))
    );
    CREATE INDEX login_audit_time ON login_audit (at);
    """


def _v321_login_throttle(flavor: Flavor) -> str:
    # Failed logins per key ('address:<ip>' or 'user:<hash of the name>') in the window that
    # began at ``since`` (issue 17): in the store, so the limits hold across API processes.
    # ``refusals`` counts the 429s of the window (the first is audited).
    return """
    CREATE TABLE login_throttle (
        key text PRIMARY KEY,
        failures integer NOT NULL,
        refusals integer NOT NULL,
        since timestamptz NOT NULL
    );
    CREATE INDEX login_throttle_since ON login_throttle (since);
    """


MIGRATIONS = [
    Migration(300, "console users and tokens", _v300_users),
    Migration(301, "alert change log in commit order", _v301_change_order),
    Migration(320, "login audit", _v320_login_audit),
    Migration(321, "login throttle", _v321_login_throttle),
]
