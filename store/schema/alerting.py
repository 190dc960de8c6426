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


def _v201_rules_and_outboxes(flavor: Flavor) -> str:
    return """
    ALTER TABLE alerts
        ADD COLUMN auto_resolve_seconds double precision NOT NULL DEFAULT 60,
        ADD COLUMN rule text,
        ADD COLUMN suppressed_by text,
        ADD COLUMN escalation_level integer NOT NULL DEFAULT 0,
        ADD COLUMN escalated_at timestamptz;
    -- The sweep's two questions, answered from small partial indexes, never a table scan.
    CREATE INDEX alerts_cleared ON alerts (cleared_at)
        WHERE state <> 'resolved' AND cleared_at IS NOT NULL;
    CREATE INDEX alerts_unacknowledged ON alerts (coalesce(escalated_at, opened_at))
        WHERE state = 'open' AND suppressed_by IS NULL;
    CREATE INDEX alerts_suppressed ON alerts (suppressed_by)
        WHERE suppressed_by IS NOT NULL AND state <> 'resolved';

    -- What the alerts service routes where, published on every (re)load so that any process
    -- changing an alert (the console's transitions) stages the same deliveries.
    CREATE TABLE alert_routing (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        routing jsonb NOT NULL,
        published_at timestamptz NOT NULL DEFAULT now()
    );

    -- MQTT outbox: alert changes for outside subscribers, committed with the change.
    CREATE TABLE mqtt_outbox (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        payload bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );

    -- CAP messages as sent (the body is what was signed), one per Alert/Update/Cancel.
    CREATE TABLE cap_messages (
        identifier text PRIMARY KEY,
        alert_id uuid NOT NULL REFERENCES alerts (id),
        msg_type text NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
        sent timestamptz NOT NULL,
        body text NOT NULL
    );
    CREATE INDEX cap_messages_alert ON cap_messages (alert_id, sent);

    -- Police outbox: one row per (message, endpoint); webhook_id is stable across retries.
    -- alert_id (the incident) keeps an incident's messages in order per endpoint.
    CREATE TABLE police_deliveries (
        seq bigserial PRIMARY KEY,
        webhook_id text NOT NULL UNIQUE,
        identifier text NOT NULL REFERENCES cap_messages (identifier),
        alert_id uuid NOT NULL,
        endpoint_id text NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_status integer,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz
    );
    CREATE INDEX police_deliveries_pending ON police_deliveries (endpoint_id, seq)
        WHERE status = 'pending';
    -- "Is an earlier message of this incident still pending for this endpoint?"
    CREATE INDEX police_deliveries_incident ON police_deliveries (endpoint_id, alert_id, seq)
        WHERE status = 'pending';

    CREATE TABLE police_endpoints (
        id text PRIMARY KEY,
        consecutive_failures integer NOT NULL DEFAULT 0,
        disabled_at timestamptz,
        disabled_reason text,
        last_success_at timestamptz,
        last_failure_at timestamptz
    );

    CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify(TG_TABLE_NAME, '');
        RETURN NULL;
    END $$;
    -- One wake-up per statement is enough: the workers read everything pending.
    CREATE TRIGGER mqtt_outbox_notify AFTER INSERT ON mqtt_outbox
        FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
    CREATE TRIGGER police_deliveries_notify AFTER INSERT ON police_deliveries
        FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
    """


def _v202_evidence(flavor: Flavor) -> str:
    return """
    -- The snapshot an edge sent when a camera alert opened (one per alert).
    CREATE TABLE alert_evidence (
        alert_id uuid PRIMARY KEY REFERENCES alerts (id),
        request_id text NOT NULL,
        jpeg bytea NOT NULL,
        width integer NOT NULL,
        height integer NOT NULL,
        taken_at timestamptz NOT NULL,
        stored_at timestamptz NOT NULL DEFAULT now()
    );
    """


def _v210_incidents(flavor: Flavor) -> str:
    return """
    -- An incident groups the alerts that belong together (same source, same tourist site,
    -- or related kinds near each other in place and time); the alerts engine assigns each
    -- alert to one in the transaction that opens it. Its state and severity are derived from
    -- its alerts, so nothing here can drift from them.
    CREATE TABLE incidents (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        opened_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    -- Site membership of cameras (access points have theirs since migration 1).
    ALTER TABLE cameras ADD COLUMN IF NOT EXISTS site_id text;
    -- Where the alert happened (its camera's or AP's place, site and road, copied when it
    -- opened), the notes operators added, and its incident (set in the transaction that
    -- opens it; nullable only between the alert's INSERT and that UPDATE).
    ALTER TABLE alerts
        ADD COLUMN incident_id uuid,
        ADD COLUMN lat double precision,
        ADD COLUMN lon double precision,
        ADD COLUMN site_id text,
        ADD COLUMN road text,
        ADD COLUMN note_count integer NOT NULL DEFAULT 0;
    UPDATE alerts a SET lat = p.lat, lon = p.lon, site_id = p.site_id, road = p.road
    FROM (SELECT id, lat, lon, site_id, road FROM cameras
          UNION ALL SELECT id, lat, lon, site_id, NULL FROM access_points) p
    WHERE p.id = a.source_id;
    -- Alerts from before incidents existed: one incident each.
    UPDATE alerts SET incident_id = gen_random_uuid();
    INSERT INTO incidents (id, opened_at) SELECT incident_id, opened_at FROM alerts;
    ALTER TABLE alerts ADD CONSTRAINT alerts_incident_fk
        FOREIGN KEY (incident_id) REFERENCES incidents (id);
    -- The change log's payloads are alert views: give the old ones the new fields.
    UPDATE alert_changes c SET payload = c.payload || jsonb_build_object(
            'incident_id', a.incident_id::text, 'lat', a.lat, 'lon', a.lon, 'note_count', 0)
    FROM alerts a WHERE a.id = c.alert_id;
    CREATE INDEX alerts_incident ON alerts (incident_id);
    -- Grouping reads the unresolved alerts through alerts_one_open (a partial index of
    -- them): no index of its own.

    -- Audit lines the page can translate: system entries carry a reason code and the raw
    -- detail (event id, window id, alert id) apart from people's notes.
    ALTER TABLE alert_audit ADD COLUMN reason text, ADD COLUMN detail text;
    UPDATE alert_audit SET
        detail = note,
        note = NULL,
        reason = CASE
            WHEN action = 'open' THEN 'new_incident'
            WHEN action IN ('mute', 'unmute') AND note LIKE 'maintenance:%' THEN 'maintenance'
            WHEN action IN ('mute', 'unmute') AND note LIKE 'inhibited:%' THEN 'inhibited'
            WHEN action = 'auto_resolve' THEN 'condition_cleared'
            WHEN action = 'escalate' THEN 'unacknowledged'
        END
    WHERE actor = 'system';
    """


_FIGURES = r"([0-9]+(?:\.[0-9]+)?) km/h \(limit ([0-9]+(?:\.[0-9]+)?) km/h\)$"
"""How the English title of a speeding alert wrote its speed and limit before migration 240."""


def _v240_speeding_figures(flavor: Flavor) -> str:
    return f"""
    -- A speeding alert's measured speed and its gate's limit (km/h) as fields: the CAP
    -- message carries them from here, not from the title's text. Alerts opened before
    -- have them read back once from the English title they were written into.
    ALTER TABLE alerts
        ADD COLUMN speed_kmh double precision,
        ADD COLUMN limit_kmh double precision;
    UPDATE alerts SET speed_kmh = f.m[1]::double precision, limit_kmh = f.m[2]::double precision
    FROM (SELECT id, regexp_match(title_en, '{_FIGURES}') AS m
          FROM alerts WHERE kind = 'speeding') f
    WHERE alerts.id = f.id AND f.m IS NOT NULL;
    """


MIGRATIONS = [
    Migration(200, "alerts, audit and change log", _v200_alerts),
    Migration(
        201,
        "alert rules, suppression, escalation; MQTT and police outboxes",
        _v201_rules_and_outboxes,
    ),
    Migration(202, "alert evidence snapshots", _v202_evidence),
    Migration(210, "incidents; alert places and notes; audit reason codes", _v210_incidents),
    Migration(240, "speeding alerts' speed and limit as columns", _v240_speeding_figures),
]
