"""Alerts, their audit trail and the ordered change log the console follows (200-299)."""

from __future__ import annotations

from .._migrations import Flavor, Migration


def _v200_alerts(flavor: Flavor) -> str:
    return """
    CREATE TABLE alerts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        kind text NOT NULL,
        source_id text NOT NULL,
        zone_id text,
        district_id text NOT NULL,
        severity text NOT NULL,
        state text NOT NULL CHECK (state IN ('open', 'acknowledged', 'assigned', 'resolved')),
        title_vi text NOT NULL,
        title_en text NOT NULL,
        count integer NOT NULL DEFAULT 1,
        opened_at timestamptz NOT NULL,
        last_seen_at timestamptz NOT NULL,
        cleared_at timestamptz,
        acknowledged_at timestamptz,
        acknowledged_by text,
        assigned_to text,
        resolved_at timestamptz,
        resolved_by text,
        first_event_id text,
        first_frame_captured_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    -- One open alert per (source, kind, zone): repeats update it instead of opening more.
    CREATE UNIQUE INDEX alerts_one_open
        ON alerts (source_id, kind, (coalesce(zone_id, ''))) WHERE state <> 'resolved';
    CREATE INDEX alerts_state_time ON alerts (state, opened_at DESC);
    CREATE INDEX alerts_district_time ON alerts (district_id, opened_at DESC);

    CREATE TABLE alert_audit (
        id bigserial PRIMARY KEY,
        alert_id uuid NOT NULL REFERENCES alerts (id),
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        action text NOT NULL,
        from_state text,
        to_state text NOT NULL,
        note text
    );
    CREATE INDEX alert_audit_alert ON alert_audit (alert_id, at);

    -- Every change of an alert, in commit order; the console's websocket replays from here.
    CREATE TABLE alert_changes (
        seq bigserial PRIMARY KEY,
        alert_id uuid NOT NULL REFERENCES alerts (id),
        at timestamptz NOT NULL DEFAULT now(),
        payload jsonb NOT NULL
    );
    CREATE FUNCTION notify_alert_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('alert_changes', NEW.seq::text);
        RETURN NULL;
    END $$;
    CREATE TRIGGER alert_changes_notify AFTER INSERT ON alert_changes
        FOR EACH ROW EXECUTE FUNCTION notify_alert_change();
    """


MIGRATIONS = [Migration(200, "alerts, audit and change log", _v200_alerts)]
